"""Bus events as plain JSON and back: the one conversion used to send an event to other
processes (``crm.fanout``) and, on the way in, to rebuild it.

``event_to_json`` turns the payload dataclasses into dicts (times stay epoch floats, sets
become sorted lists, a trailing ``_`` of a field name is dropped: ``from_`` -> ``from``).
``event_from_json`` rebuilds the same dataclasses for the kinds the CRM publishes, so a
subscriber (the SSE hub) handles an event from another process exactly like a local one
and needs no second code path; kinds it does not know stay plain dicts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import types
import typing
from dataclasses import is_dataclass
from typing import Any

from .events import Event

JsonDict = dict[str, Any]


def jsonable(value: Any) -> Any:
    """A JSON-ready copy of ``value`` (dataclasses -> dicts, tuples -> lists, sets ->
    sorted lists); anything JSON cannot hold becomes its ``str``."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name.rstrip("_"): jsonable(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if not f.name.startswith("_")
        }
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, set | frozenset):
        return sorted((jsonable(v) for v in value), key=str)
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return str(value)


def event_to_json(event: Event) -> JsonDict:
    """``{"kind", "payload", "extensions", "user_ids"}`` with a JSON-ready payload."""
    return {
        "kind": event.kind,
        "payload": jsonable(event.payload),
        "extensions": sorted(event.extensions),
        "user_ids": sorted(event.user_ids),
    }


# -- back to dataclasses -------------------------------------------------------------
@functools.cache
def _kinds() -> dict[str, type]:
    from ami_bridge.facts import OriginateResult
    from ami_bridge.link import LinkStatus

    from .ingest import Ingested, LiveCall
    from .models import CallbackTask, Contact

    return {
        "call_progress": LiveCall,
        "call_recorded": Ingested,
        "originate_result": OriginateResult,
        "link_status": LinkStatus,
        "lead_created": Contact,
        "callback_": CallbackTask,
    }


def payload_type(kind: str) -> type | None:
    kinds = _kinds()
    if kind in kinds:
        return kinds[kind]
    if kind.startswith("callback_"):
        return kinds["callback_"]
    return None


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _decode(tp: Any, value: Any) -> Any:
    if value is None or tp is Any:
        return value
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return from_jsonable(tp, value) if isinstance(value, dict) else value
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return _decode_union(args, value)
    if origin is typing.Literal:
        return value
    if origin is tuple and isinstance(value, list):
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_decode(args[0], v) for v in value)
        return tuple(_decode(a, v) for a, v in zip(args, value, strict=False))
    if origin is list and isinstance(value, list):
        return [_decode(args[0] if args else Any, v) for v in value]
    if origin in (frozenset, set) and isinstance(value, list):
        items = (_decode(args[0] if args else Any, v) for v in value)
        return frozenset(items) if origin is frozenset else set(items)
    if origin is dict and isinstance(value, dict):
        vt = args[1] if len(args) == 2 else Any
        return {k: _decode(vt, v) for k, v in value.items()}
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _decode_union(args: tuple[Any, ...], value: Any) -> Any:
    options = [a for a in args if a is not type(None)]
    for option in options:
        if isinstance(value, dict) and isinstance(option, type) and is_dataclass(option):
            return from_jsonable(option, value)
        base = typing.get_origin(option) or option
        if isinstance(value, list) and base in (tuple, list, set, frozenset):
            return _decode(option, value)
    if len(options) == 1:
        return _decode(options[0], value)
    if isinstance(value, int) and float in options and int not in options:
        return float(value)
    return value


def from_jsonable(cls: type, data: JsonDict) -> Any:
    """Rebuild dataclass ``cls`` from what ``jsonable`` made of one (unknown keys are
    ignored, missing ones take the field's default)."""
    hints = _hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        key = f.name.rstrip("_")
        if key in data:
            kwargs[f.name] = _decode(hints.get(f.name, Any), data[key])
    return cls(**kwargs)


def event_from_json(data: JsonDict, origin: str | None = None) -> Event:
    """The event ``event_to_json`` described, its payload rebuilt as the dataclass the
    kind carries (a plain dict for kinds not listed here, or if rebuilding fails)."""
    kind = str(data["kind"])
    payload = data.get("payload")
    cls = payload_type(kind)
    if cls is not None and isinstance(payload, dict):
        # On failure keep the dict (a newer sender's shape); subscribers skip what they
        # cannot use.
        with contextlib.suppress(TypeError, ValueError, KeyError):
            payload = from_jsonable(cls, payload)
    return Event(
        kind,
        payload,
        extensions=frozenset(str(e) for e in data.get("extensions", ())),
        user_ids=frozenset(int(u) for u in data.get("user_ids", ())),
        origin=origin,
    )
