"""Server-rendered web UI: Jinja2 templates + htmx, assets vendored (no Node build)."""
