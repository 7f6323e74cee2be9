"""Mounts the JSON API (``web/api``) on the application."""

from __future__ import annotations

from aiohttp import web

from ..api import setup_api


def setup(app: web.Application) -> None:
    setup_api(app)
