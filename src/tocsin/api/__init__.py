"""FastAPI routers: parse, call a service, map errors to HTTP. Thin."""
