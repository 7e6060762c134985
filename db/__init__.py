"""SQL access for aiworker-events: every statement the service runs lives in this package."""


class DatabaseError(Exception):
    """Root error of the db package."""
