"""The fold: Faust agents that turn input events into MySQL rows and transitions."""


class StreamsError(Exception):
    """Root error of the streams package."""
