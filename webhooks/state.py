"""Typed keys of the web application's state (aiohttp AppKey)."""

from __future__ import annotations

from aiohttp import web

from app.settings import Settings
from webhooks.publisher import KafkaPublisher

SETTINGS = web.AppKey("settings", Settings)
PUBLISHER = web.AppKey("publisher", KafkaPublisher)
BOOTSTRAP = web.AppKey("bootstrap", str)
DB_POOL = web.AppKey("db_pool", object)
