"""Typed keys of the web application's state (aiohttp AppKey)."""

from __future__ import annotations

from aiohttp import web

from app.settings import Settings
from webhooks.body import BodyReader
from webhooks.durable import DurableSink
from webhooks.limits import RateLimiter
from webhooks.metrics import Metrics
from webhooks.publisher import KafkaPublisher
from webhooks.secrets import ProjectDirectory

SETTINGS = web.AppKey("settings", Settings)
PUBLISHER = web.AppKey("publisher", KafkaPublisher)
BOOTSTRAP = web.AppKey("bootstrap", str)
DB_POOL = web.AppKey("db_pool", object)
METRICS = web.AppKey("metrics", Metrics)
SINK = web.AppKey("sink", DurableSink)
SECRETS = web.AppKey("secrets", ProjectDirectory)
BODIES = web.AppKey("bodies", BodyReader)
LIMITER = web.AppKey("limiter", RateLimiter)
