"""The JSON API (``/api/v1``) with its OpenAPI document."""

from .routes import setup_api
from .schema import API_PREFIX, openapi_document

__all__ = ["API_PREFIX", "openapi_document", "setup_api"]
