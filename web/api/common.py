"""The glue every API handler shares: one error shape, request parsing that answers 400/422
with the field named instead of a 500, and the caller's visibility scope.

Bodies are capped (``MAX_BODY``: 413 beyond it, before parsing) and writes with an API
token are rate-limited per token (``[api] writes_per_minute``: 429 with Retry-After), so
one integration gone wrong cannot fill the database."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from crm.access import Scope
from crm.clicktocall import ClickToCallError
from crm.errors import Forbidden, InvalidInput, NotFound
from crm.limits import TooLarge

from ..app import current_user, runtime
from ..ratelimit import RateLimit
from ..render import visitor
from .schema import SCHEMAS, SchemaError, check

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SCOPE_KEY: web.RequestKey[Scope] = web.RequestKey("crm_api_scope", Scope)
MAX_LIMIT = 500
MAX_BODY = 64 * 1024
"""Bytes of a JSON body: far more than a contact within ``crm.limits`` needs."""
WRITES_PER_MINUTE = 120
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


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
            _limit_writes(request)
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
        except TooLarge as exc:
            return error_response(413, str(exc), _field_of(str(exc)), "too_large")
        except InvalidInput as exc:
            return error_response(422, str(exc), _field_of(str(exc)))
        except NotFound as exc:
            return error_response(404, f"not found: {exc}")

    return wrapped


def _limit_writes(request: web.Request) -> None:
    """At most ``[api] writes_per_minute`` writes per API token (sessions: the pages'
    own limits apply)."""
    if request.method not in WRITE_METHODS or visitor(request).auth != "token":
        return
    rt = runtime(request)
    limiter = rt.extras.get("api_write_limit")
    if limiter is None:
        per_minute = int(rt.settings.get("api", {}).get("writes_per_minute", WRITES_PER_MINUTE))
        limiter = rt.extras["api_write_limit"] = RateLimit(per_minute, 60.0)
    token = request.headers.get("Authorization", "")[7:].strip()
    wait = limiter.hit(hashlib.sha256(token.encode()).hexdigest())
    if wait:
        raise web.HTTPTooManyRequests(
            text=f"too many writes with this API token; retry in {int(wait) + 1} s",
            headers={"Retry-After": str(int(wait) + 1)},
        )


async def _read_capped(request: web.Request) -> bytes:
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise ApiError(413, f"the body is larger than {MAX_BODY // 1024} KB", None, "too_large")
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.read(MAX_BODY + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_BODY:
            raise ApiError(413, f"the body is larger than {MAX_BODY // 1024} KB", None,
                           "too_large")  # fmt: skip
    return b"".join(chunks)


async def json_body(request: web.Request, schema: str) -> dict[str, Any]:
    """The request's JSON object (at most ``MAX_BODY`` bytes: 413), checked against
    ``components.schemas[schema]``."""
    if request.content_type != "application/json":
        raise ApiError(415 if request.content_type else 400,
                       "send a JSON body with Content-Type: application/json")  # fmt: skip
    raw = await _read_capped(request)
    try:
        body = json.loads(raw)
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
