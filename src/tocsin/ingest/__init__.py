"""Ingest: one pure parser per source format, turning request bodies into core Signals."""
