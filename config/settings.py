"""Settings: the commented ``default.toml`` beside this file, ``demo.toml`` (the lab PBX the
demo replays, only when asked for), an optional override file, then ``CRM__SECTION__KEY``
environment variables, in that order.

The defaults are neutral (no trunk names, no own numbers) so that nothing of the demo's PBX
leaks into a real installation; the demo and the tests that replay the lab's captures load
``demo.toml`` explicitly.

Returned as a plain nested dict of sections plus typed views (``pbx_profile``) for the
parts other packages consume, so no package reads TOML or the environment itself.
"""

from __future__ import annotations

import copy
import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ami_bridge.profile import PbxProfile

DEFAULT_FILE = Path(__file__).with_name("default.toml")
DEMO_FILE = Path(__file__).with_name("demo.toml")
ENV_PREFIX = "CRM__"
SECRET_KEYS = frozenset({"secret", "password", "secret_key", "dsn", "cdr_dsn"})


class SettingsError(ValueError):
    """A settings file or variable is wrong; the message names which and why."""


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def _coerce(raw: str, like: Any) -> Any:
    """An environment string as the type the default has (bool, int, float, list)."""
    if isinstance(like, bool):
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise SettingsError(f"expected true or false, got {raw!r}")
    if isinstance(like, int):
        return int(raw)
    if isinstance(like, float):
        return float(raw)
    if isinstance(like, list | dict):
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            if isinstance(like, list):
                return [p.strip() for p in raw.split(",") if p.strip()]
            raise SettingsError(f"expected a JSON object, got {raw!r}") from None
    return raw


def load_settings(
    path: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    *,
    demo: bool = False,
) -> dict[str, Any]:
    """The settings: defaults, then the demo's (``demo``), then ``path``, then ``env``
    (``os.environ`` when None)."""
    try:
        data = tomllib.loads(DEFAULT_FILE.read_text())
        if demo:
            _merge(data, tomllib.loads(DEMO_FILE.read_text()))
    except tomllib.TOMLDecodeError as exc:  # pragma: no cover - our own files
        raise SettingsError(f"{exc}") from None
    if path is not None:
        p = Path(path)
        try:
            _merge(data, tomllib.loads(p.read_text()))
        except FileNotFoundError:
            raise SettingsError(f"{p}: no such settings file") from None
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"{p}: {exc}") from None
    for name, raw in (os.environ if env is None else env).items():
        if not name.startswith(ENV_PREFIX):
            continue
        parts = name[len(ENV_PREFIX) :].lower().split("__")
        if len(parts) != 2:
            raise SettingsError(f"{name}: expected CRM__SECTION__KEY")
        section, key = parts
        current = data.setdefault(section, {})
        try:
            current[key] = _coerce(raw, current.get(key, ""))
        except (ValueError, SettingsError) as exc:
            raise SettingsError(f"{name}: {exc}") from None
    return data


def pbx_profile(settings: Mapping[str, Any]) -> PbxProfile:
    pbx = settings.get("pbx", {})
    numbers = settings.get("numbers", {})
    return PbxProfile(
        trunk_endpoints=tuple(pbx.get("trunk_endpoints", ("trunk",))),
        trunk_contexts=tuple(pbx.get("trunk_contexts", ())),
        extension_pattern=str(pbx.get("extension_pattern", r"\d{2,6}")),
        extension_map={str(k): str(v) for k, v in pbx.get("extension_map", {}).items()},
        own_numbers=tuple(str(n) for n in pbx.get("own_numbers", ())),
        default_region=str(numbers.get("default_region", "US")),
        intl_prefixes=tuple(numbers.get("intl_prefixes", ("00", "011"))),
        recording_vars=tuple(pbx.get("recording_vars", ("MIXMONITOR_FILENAME",))),
        correlation_var=str(pbx.get("correlation_var", "CRM_CALL_ID")),
        finish_grace=float(pbx.get("finish_grace", 1.0)),
    )


def redacted(settings: Mapping[str, Any]) -> dict[str, Any]:
    """A copy safe to show or log: secrets replaced by a marker."""
    out: dict[str, Any] = {}
    for key, value in settings.items():
        if isinstance(value, Mapping):
            out[key] = redacted(value)
        elif key in SECRET_KEYS:
            out[key] = "********" if value else ""
        else:
            out[key] = value
    return out
