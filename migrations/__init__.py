"""Numbered SQL migrations, applied in order by `aiworker-events migrate` (see db/migrate.py)."""
