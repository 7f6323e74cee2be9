"""The glue every API handler shares: one error shape, request parsing that answers 400/422
with the field named instead of a 500, and the caller's visibility scope."""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from crm.access import Scope
from crm.clicktocall import ClickToCallError
from crm.errors import Forbidden, InvalidInput, NotFound

from ..app import current_user, runtime
from .schema import SCHEMAS, SchemaError, check

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SCOPE_KEY: web.RequestKey[Scope] = web.RequestKey("crm_api_scope", Scope)
MAX_LIMIT = 500


class ApiError(Exception):
    """An answer other than success, in the API's words."""

    def __init__(self, status: int, message: str, field: str | None = None,
                 code: str | None = None) -> None:  # fmt: skip
        super().__init__(message)
        self.status, self.message, self.field, self.code = status, message, field, code


def error_response(status: int, message: str, field: str | None = None,
                   code: str | None = None) -> web.Response:  # fmt: skip
    body: dict[str, Any] = {"status": status, "message": message}
    if field:
        body["field"] = field
    if code:
        body["code"] = code
    return web.json_response({"error": body}, status=status)


_FIELD_WORDS = (
    ("e-mail", "email"), ("phone number", "phones"), ("lead status", "lead_status"),
    ("name or a number", "name"), ("owner", "owner_id"),
)  # fmt: skip


def _field_of(message: str) -> str | None:
    """The field a service's refusal is about (services say it in words)."""
    head = re.match(r"^([a-z_]+):", message)
    if head:
        return head.group(1)
    low = message.lower()
    return next((f for words, f in _FIELD_WORDS if words in low), None)


def api(handler: Handler) -> Handler:
    """Turn the CRM's refusals into JSON errors (422 with the field, 404, 429...)."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as exc:
            return error_response(exc.status, exc.message, exc.field, exc.code)
        except SchemaError as exc:
            return error_response(422, exc.message, exc.field)
        except ClickToCallError as exc:
            status = 429 if exc.code == "rate_limited" else 422
            field = "number" if exc.code in ("bad_number", "blocked") else None
            if exc.code in ("not_your_extension", "bad_extension"):
                field = "extension"
            return error_response(status, exc.message, field, exc.code)
        except Forbidden as exc:
            return error_response(403, str(exc), _field_of(str(exc)))
        except InvalidInput as exc:
            return error_response(422, str(exc), _field_of(str(exc)))
        except NotFound as exc:
            return error_response(404, f"not found: {exc}")

    return wrapped


async def json_body(request: web.Request, schema: str) -> dict[str, Any]:
    """The request's JSON object, checked against ``components.schemas[schema]``."""
    if request.content_type != "application/json":
        raise ApiError(415 if request.content_type else 400,
                       "send a JSON body with Content-Type: application/json")  # fmt: skip
    try:
        body = await request.json(loads=json.loads)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "the body is not valid JSON") from None
    except RecursionError:
        raise ApiError(400, "the body is nested too deeply") from None
    if not isinstance(body, dict):
        raise ApiError(422, "the body must be a JSON object", "body")
    check(body, SCHEMAS[schema])
    return body


def int_param(request: web.Request, name: str, *, low: int = 1,
              high: int | None = None) -> int | None:  # fmt: skip
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"{name}: must be a whole number", name) from None
    if value < low or (high is not None and value > high):
        span = f"{low}..{high}" if high is not None else f"at least {low}"
        raise ApiError(400, f"{name}: must be {span}", name)
    return value


def limit_param(request: web.Request, default: int = 50) -> int:
    return int_param(request, "limit", high=MAX_LIMIT) or default


def choice_param(request: web.Request, name: str, allowed: list[str]) -> str | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    if raw not in allowed:
        raise ApiError(400, f"{name}: must be one of {', '.join(allowed)}", name)
    return raw


def time_param(request: web.Request, name: str) -> float | None:
    """ISO 8601 (date or date-time; UTC unless it says otherwise) or Unix seconds."""
    raw = (request.query.get(name) or "").strip()
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError:
        pass
    try:
        when = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(400, f"{name}: not a date or time (use ISO 8601)", name) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


async def scope(request: web.Request) -> Scope:
    """What the caller may see, computed once per request."""
    found = request.get(SCOPE_KEY)
    if found is None:
        found = request[SCOPE_KEY] = await runtime(request).service.scope_for(current_user(request))
    return found
