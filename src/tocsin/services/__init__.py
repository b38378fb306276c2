"""Application services: use cases over a Session.

They never commit; the caller (HTTP request, CLI command, engine module) owns the unit of work.
"""
