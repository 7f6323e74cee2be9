"""The API's contract: one table of JSON schemas and operations, from which the OpenAPI 3.1
document is built and against which request bodies are checked.

Written as data rather than scraped from handlers so the document is reviewed like code
and cannot drift: the tests check every route is documented, the document validates, and
every answer the API gives matches the schema documented for it.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from ..security import CSRF_HEADER

API_PREFIX = "/api/v1"
VERSION = "1.0.0"
Schema = dict[str, Any]


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def page_of(name: str) -> Schema:
    return {
        "type": "object",
        "required": ["items", "next_cursor"],
        "properties": {
            "items": {"type": "array", "items": ref(name)},
            "next_cursor": {
                "type": ["string", "null"],
                "description": "Pass as `cursor` for the next page; null on the last page.",
            },
        },
        "additionalProperties": False,
    }


def record(properties: Schema, *, optional: tuple[str, ...] = ()) -> Schema:
    """An object with exactly these properties, each required unless named ``optional``."""
    return {
        "type": "object",
        "required": [name for name in properties if name not in optional],
        "properties": properties,
        "additionalProperties": False,
    }


TIME = {"type": "string", "format": "date-time", "description": "ISO 8601, UTC"}
E164 = {"type": "string", "pattern": r"^\+[1-9]\d{1,14}$", "description": "E.164"}
DIRECTIONS = ["inbound", "outbound", "internal"]
OUTCOMES = ["answered", "missed", "abandoned", "busy", "no_answer", "failed"]
LEAD_STATUSES = ["new", "contacted", "qualified", "converted", "junk"]
CLICK_STATES = ["ringing_you", "dialling", "connected", "ended", "failed"]

CONTACT_INPUT: Schema = {
    "name": {"type": "string", "maxLength": 200},
    "company": {"type": "string", "maxLength": 200},
    "email": {"type": "string", "maxLength": 254},
    "phones": {
        "type": "array",
        "maxItems": 20,
        "items": {"type": "string", "minLength": 1, "maxLength": 40},
    },
    "owner_id": {"type": ["integer", "null"]},
    "tags": {"type": "array", "maxItems": 50, "items": {"type": "string", "maxLength": 50}},
    "custom": {"type": "object"},
}
"""The fields a client may write on a contact (create and patch)."""

SCHEMAS: dict[str, Schema] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["status", "message"],
                "properties": {
                    "status": {"type": "integer"},
                    "message": {"type": "string"},
                    "field": {"type": "string", "description": "The input field at fault."},
                    "code": {"type": "string", "description": "Machine-readable reason."},
                },
            }
        },
    },
    "Me": {
        "type": "object",
        "required": ["id", "username", "display_name", "role", "extensions", "team_id", "auth"],
        "properties": {
            "id": {"type": "integer"},
            "username": {"type": "string"},
            "display_name": {"type": "string"},
            "role": {"enum": ["rep", "manager", "admin"]},
            "extensions": {"type": "array", "items": {"type": "string"}},
            "team_id": {"type": ["integer", "null"]},
            "auth": {"enum": ["session", "token"]},
        },
        "additionalProperties": False,
    },
    "Phone": {
        "type": "object",
        "required": ["raw", "e164", "label"],
        "properties": {
            "raw": {"type": "string"},
            "e164": nullable(E164),
            "label": {"type": "string"},
        },
        "additionalProperties": False,
    },
    "Lead": {
        "type": "object",
        "required": ["status", "source", "created_at"],
        "properties": {
            "status": {"enum": LEAD_STATUSES},
            "source": {"type": "string"},
            "created_at": TIME,
        },
        "additionalProperties": False,
    },
    "Contact": record(
        {
            "id": {"type": "integer"},
            "name": {"type": "string"},
            "company": {"type": "string"},
            "email": {"type": "string"},
            "owner_id": {"type": ["integer", "null"]},
            "tags": {"type": "array", "items": {"type": "string"}},
            "custom": {"type": "object"},
            "phones": {"type": "array", "items": ref("Phone")},
            "lead": nullable(ref("Lead")),
            "created_at": TIME,
            "updated_at": TIME,
            "last_contact_at": nullable(TIME),
        }
    ),
    "ContactCreate": {
        "type": "object",
        "properties": {
            **CONTACT_INPUT,
            "lead_status": {"enum": LEAD_STATUSES},
        },
        "additionalProperties": False,
        "description": "A contact needs a name or a number.",
    },
    "ContactPatch": {
        "type": "object",
        "minProperties": 1,
        "properties": CONTACT_INPUT,
        "additionalProperties": False,
    },
    "Call": record(
        {
            "id": {"type": "integer"},
            "linkedid": {"type": "string"},
            "direction": {"enum": DIRECTIONS},
            "caller": {"type": ["string", "null"]},
            "caller_name": {"type": ["string", "null"]},
            "callee": {"type": ["string", "null"]},
            "remote_e164": {"type": ["string", "null"]},
            "did": {"type": ["string", "null"]},
            "rang": {"type": "array", "items": {"type": "string"}},
            "answered": {"type": "boolean"},
            "answered_by": {"type": ["string", "null"]},
            "final_agent": {"type": ["string", "null"]},
            "outcome": {"enum": OUTCOMES},
            "hangup_by": {"enum": ["caller", "callee", "pbx", None]},
            "started_at": TIME,
            "answered_at": nullable(TIME),
            "ended_at": TIME,
            "ring_seconds": {"type": "number"},
            "talk_seconds": {"type": "number"},
            "contact_id": {"type": ["integer", "null"]},
            "user_id": {"type": ["integer", "null"]},
            "match_reason": {"type": "string"},
            "recording_ids": {"type": "array", "items": {"type": "integer"}},
            "originate_id": {"type": ["string", "null"]},
            "queue": {"type": ["string", "null"]},
            "declined": {
                "type": "array",
                "items": {"type": "string"},
                "description": "Extensions among `rang` whose phones declined the call.",
            },
            "transfers": {
                "type": "array",
                "description": "Transfers in order. `from` is the rep who handed the call "
                "on; `to` is an extension, or an outside number in E.164.",
                "items": {
                    "type": "object",
                    "required": ["kind", "from", "to", "at"],
                    "properties": {
                        "kind": {"enum": ["blind", "attended"]},
                        "from": {"type": ["string", "null"]},
                        "to": {"type": ["string", "null"]},
                        "at": TIME,
                    },
                    "additionalProperties": False,
                },
            },
            "complete": {
                "type": "boolean",
                "description": "False when the bridge did not see the whole call (attached "
                "mid-call, or the link was down when it ended): its figures are partial.",
            },
            "source": {
                "enum": ["ami", "cdr"],
                "description": "ami: seen live on the PBX link; cdr: backfilled from the "
                "PBX's own CDR for a time no link was up (who hung up and transfers unknown)",
            },
        },
        optional=("caller_name",),
    ),
    "Callback": record(
        {
            "id": {"type": "integer"},
            "number_e164": {"type": ["string", "null"]},
            "contact_id": {"type": ["integer", "null"]},
            "owner_id": {"type": ["integer", "null"]},
            "status": {"enum": ["open", "closed"]},
            "opened_at": TIME,
            "due_at": TIME,
            "closed_at": nullable(TIME),
            "closed_by_user_id": {"type": ["integer", "null"]},
            "closed_by_call": {"type": ["integer", "null"]},
            "time_to_callback": {"type": ["number", "null"]},
            "missed_count": {"type": "integer", "description": "Missed calls from the number"},
            "attempts": {"type": "integer", "description": "Callback attempts logged by reps"},
            "kind": {"enum": ["missed", "follow_up"]},
            "snoozed_until": nullable(TIME),
            "close_reason": {"type": "string"},
        },
        optional=(
            "closed_by_user_id",
            "closed_by_call",
            "time_to_callback",
            "attempts",
            "kind",
            "snoozed_until",
            "close_reason",
        ),
    ),
    "ClickToCallRequest": {
        "type": "object",
        "required": ["number"],
        "properties": {
            "number": {"type": "string", "minLength": 1, "maxLength": 40},
            "extension": {
                "type": "string",
                "maxLength": 10,
                "description": "One of your own extensions (default: the first).",
            },
            "request_key": {
                "type": "string",
                "maxLength": 80,
                "description": "Retries with the same key never dial twice.",
            },
        },
        "additionalProperties": False,
    },
    "ClickToCall": {
        "type": "object",
        "required": ["originate_id", "number", "extension", "state", "reason", "duplicate"],
        "properties": {
            "originate_id": {"type": "string"},
            "number": E164,
            "extension": {"type": "string"},
            "state": {"enum": CLICK_STATES},
            "reason": {"type": ["string", "null"]},
            "duplicate": {"type": "boolean"},
        },
        "additionalProperties": False,
    },
    "ContactPage": page_of("Contact"),
    "CallPage": page_of("Call"),
    "CallbackPage": page_of("Callback"),
}


def _param(name: str, where: str, schema: Schema, description: str = "",
           required: bool = False) -> Schema:  # fmt: skip
    p: Schema = {"name": name, "in": where, "schema": schema, "required": required}
    if description:
        p["description"] = description
    return p


def _id(name: str = "id") -> Schema:
    return _param(name, "path", {"type": "integer", "minimum": 1}, required=True)


PAGE_PARAMS = [
    _param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 500},
           "Page size (default 50)."),
    _param("cursor", "query", {"type": "string"}, "`next_cursor` of the previous page."),
]  # fmt: skip
WHEN = {"type": "string", "description": "ISO 8601 date or date-time, or Unix seconds"}
CALL_FILTERS = [
    _param("since", "query", WHEN, "Calls started at or after."),
    _param("until", "query", WHEN, "Calls started before."),
    _param("direction", "query", {"enum": DIRECTIONS}),
    _param("outcome", "query", {"enum": OUTCOMES}),
    _param("user", "query", {"type": "integer"}, "The rep's user id."),
    _param(
        "number",
        "query",
        {"type": "string"},
        "The remote number in any format, or at least 4 of its digits (any part of it).",
    ),
    _param("contact", "query", {"type": "integer"}, "Contact id."),
]


def _json(schema: Schema, description: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Schema]:
    words = {400: "Malformed request", 401: "Not authenticated", 403: "Not allowed",
             404: "Not found (or not visible to you)", 409: "Conflict",
             413: "Too large (the body, or a field: `field` names it)",
             422: "Invalid input; `field` names it", 429: "Too many requests",
             503: "Not available"}  # fmt: skip
    return {str(c): _json(ref("Error"), words[c]) for c in (401, *codes)}


def op(summary: str, ok: tuple[int, Schema | None, str], *, params: list[Schema] | None = None,
       body: str | None = None, errors: tuple[int, ...] = (), tag: str = "",
       description: str = "") -> Schema:  # fmt: skip
    status, schema, words = ok
    responses = {str(status): _json(schema, words) if schema else {"description": words}}
    responses.update(_errors(*errors))
    o: Schema = {"summary": summary, "responses": responses}
    if tag:
        o["tags"] = [tag]
    if description:
        o["description"] = description
    if params:
        o["parameters"] = params
    if body:
        o["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": ref(body)}},
        }
    return o


SCOPE_NOTE = "Only what your role sees in the UI: a rep their own, a manager their team's."


def list_op(summary: str, page: str, words: str, tag: str, filters: list[Schema]) -> Schema:
    """A list operation: every one pages the same way, answers 400 to a bad filter or
    cursor and shows only what the caller's role sees, so that is said once here."""
    return op(summary, (200, ref(page), words), params=[*filters, *PAGE_PARAMS],
              errors=(400,), tag=tag, description=SCOPE_NOTE)  # fmt: skip


# Deliberately alike (`duplicates` pairs its entries, e.g. /leads with /leads/{id}/convert):
# every operation is one op(...) call of the same shape, data to read, not logic to share.
PATHS: dict[str, dict[str, Schema]] = {
    "/me": {"get": op("Who the token or session belongs to", (200, ref("Me"), "You"), tag="me")},
    "/contacts": {
        "get": list_op(
            "List or search contacts",
            "ContactPage",
            "A page of contacts",
            "contacts",
            [
                _param(
                    "q",
                    "query",
                    {"type": "string", "maxLength": 200},
                    "Name, company, e-mail or any number in any format.",
                ),
            ],
        ),
        "post": op(
            "Create a contact",
            (201, ref("Contact"), "Created"),
            body="ContactCreate",
            errors=(400, 403, 413, 422, 429),
            tag="contacts",
        ),
    },
    "/contacts/{id}": {
        "get": op(
            "One contact",
            (200, ref("Contact"), "The contact"),
            params=[_id()],
            errors=(404,),
            tag="contacts",
        ),
        "patch": op(
            "Change a contact",
            (200, ref("Contact"), "Changed"),
            params=[_id()],
            body="ContactPatch",
            errors=(400, 403, 404, 413, 422, 429),
            tag="contacts",
        ),
        "delete": op(
            "Delete a contact (managers, admins)",
            (204, None, "Deleted"),
            params=[_id()],
            errors=(403, 404, 429),
            tag="contacts",
        ),
    },
    "/leads": {
        "get": list_op(
            "List leads (contacts with a lead status)",
            "ContactPage",
            "A page of leads",
            "leads",
            [_param("status", "query", {"enum": LEAD_STATUSES})],
        ),
    },
    "/leads/{id}/convert": {
        "post": op(
            "Convert a lead into a customer",
            (200, ref("Contact"), "Converted"),
            params=[_id()],
            errors=(404, 422, 429),
            tag="leads",
        ),
    },
    "/calls": {
        "get": list_op(
            "List calls, newest first", "CallPage", "A page of calls", "calls", CALL_FILTERS
        ),
        "post": op(
            "Click-to-call: ring your phone, then the number",
            (202, ref("ClickToCall"), "The Originate is on its way"),
            body="ClickToCallRequest",
            errors=(400, 422, 429, 503),
            tag="calls",
            description="Progress follows as `click_progress` events on /events.",
        ),
    },
    "/calls/{id}": {
        "get": op(
            "One call", (200, ref("Call"), "The call"), params=[_id()], errors=(404,), tag="calls"
        ),
    },
    "/callbacks": {
        "get": list_op(
            "Callback tasks, oldest due first",
            "CallbackPage",
            "A page of callbacks",
            "callbacks",
            [
                _param("status", "query", {"enum": ["open", "closed", "all"]}, "Default open."),
                _param("owner", "query", {"type": "integer"}),
            ],
        ),
    },
    "/openapi.json": {
        "get": op("This document", (200, {"type": "object"}, "OpenAPI 3.1"), tag="meta"),
    },
}


def openapi_document() -> Schema:
    """The OpenAPI 3.1 document (a fresh copy: callers may not change the table)."""
    return copy.deepcopy({
        "openapi": "3.1.0",
        "info": {
            "title": "Switchboard CRM API",
            "version": VERSION,
            "description": "Contacts, calls, callbacks and leads of the telephony CRM. "
            "Authenticate with `Authorization: Bearer <token>` (an API token an admin "
            f"creates for a user), or with the session cookie plus the `{CSRF_HEADER}` "
            "header (the app's own pages). A token may be read-only (any method but GET "
            "answers 403) and may expire (then 401). Every list and get is limited to what that "
            "user may see in the UI. Errors are `{\"error\": {\"status\", \"message\"}}`.",
        },
        "servers": [{"url": API_PREFIX}],
        "security": [{"bearer": []}, {"session": []}],
        "paths": PATHS,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "session": {"type": "apiKey", "in": "cookie", "name": "crm_session"},
            },
        },
    })  # fmt: skip


# -- request checking ------------------------------------------------------------------


class SchemaError(ValueError):
    """A request body that does not match its schema; ``field`` names the culprit."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,), "integer": (int,), "number": (int, float), "boolean": (bool,),
    "array": (list,), "object": (dict,), "null": (type(None),),
}  # fmt: skip


def _is(value: Any, kind: str) -> bool:
    if isinstance(value, bool) and kind in ("integer", "number"):
        return False
    return isinstance(value, _TYPES[kind])


def check(value: Any, schema: Schema, where: str = "") -> None:
    """Check ``value`` against the subset of JSON Schema the table uses (type, enum,
    lengths, required, properties, additionalProperties, items, $ref, anyOf).  The
    tests run the same schemas through ``jsonschema`` so the two cannot disagree."""
    if "$ref" in schema:
        check(value, SCHEMAS[schema["$ref"].rsplit("/", 1)[1]], where)
        return
    name = where or "body"
    if "anyOf" in schema:
        errors: list[SchemaError] = []
        for option in schema["anyOf"]:
            try:
                check(value, option, where)
                return
            except SchemaError as exc:
                errors.append(exc)
        raise errors[0]
    kinds = schema.get("type")
    if kinds is not None:
        kinds = [kinds] if isinstance(kinds, str) else kinds
        if not any(_is(value, k) for k in kinds):
            raise SchemaError(name, f"{name}: expected {' or '.join(kinds)}")
    if "enum" in schema and value not in schema["enum"]:
        allowed = ", ".join(str(v) for v in schema["enum"] if v is not None)
        raise SchemaError(name, f"{name}: must be one of {allowed}")
    if isinstance(value, str):
        if len(value) > schema.get("maxLength", len(value)):
            raise SchemaError(name, f"{name}: at most {schema['maxLength']} characters")
        if len(value) < schema.get("minLength", 0):
            raise SchemaError(name, f"{name}: must not be empty")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            raise SchemaError(name, f"{name}: bad format")
    if isinstance(value, list):
        if len(value) > schema.get("maxItems", len(value)):
            raise SchemaError(name, f"{name}: at most {schema['maxItems']} items")
        for i, item in enumerate(value):
            check(item, schema.get("items", {}), f"{name}[{i}]")
    if isinstance(value, dict):
        _check_object(value, schema, where)


def _check_object(value: dict[str, Any], schema: Schema, where: str) -> None:
    props: dict[str, Schema] = schema.get("properties", {})
    if len(value) < schema.get("minProperties", 0):
        raise SchemaError(where or "body", f"{where or 'body'}: nothing to change")
    for key in schema.get("required", ()):
        if key not in value:
            field = f"{where}.{key}" if where else key
            raise SchemaError(field, f"{field}: required")
    for key, item in value.items():
        field = f"{where}.{key}" if where else key
        if key in props:
            check(item, props[key], field)
        elif schema.get("additionalProperties", True) is False:
            raise SchemaError(field, f"{field}: unknown field")
