"""SQLAlchemy tables, the database handle, repositories and Alembic migrations."""
