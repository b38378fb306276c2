"""The engine: a loop of idempotent modules coordinated through the database."""
