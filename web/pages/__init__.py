"""Page modules: each ``web/pages/<name>.py`` with a ``setup(app)`` adds its routes.

Discovered rather than listed so that adding a page is adding a file.
"""

from __future__ import annotations

import importlib
import pkgutil

from aiohttp import web


def setup(app: web.Application) -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        hook = getattr(module, "setup", None)
        if callable(hook):
            hook(app)
