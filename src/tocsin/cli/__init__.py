"""The `tocsin` command line (Typer)."""
