"""aiworker-events: settings, command line, topics, event models and the Faust app."""


class AiworkerError(Exception):
    """Root error of the app package."""
