"""The HTTP side: Gitea webhooks and agent/control events into Kafka topics, durable before 2xx."""


class WebhooksError(Exception):
    """Root error of the webhooks package."""
