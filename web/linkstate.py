"""Whether a configured PBX link is down, and since when: what the banner on every page
and ``/healthz`` say.

A ``LinkBoard`` taps the event bus for ``link_status`` events, so it hears this process's
own links and, on PostgreSQL, the links other processes consume (their statuses come
through the fan-out), and a process that consumes no link still knows.  "Since" is the
first moment the link stopped being connected, not the last reconnect attempt: a link
retrying every few seconds has been down since it dropped.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ami_bridge.link import settings_from_config
from crm.events import Event

from .linkmanager import link_configs

CONNECT_GRACE_SECONDS = 5.0
"""A link still making its first connection is not called down before this: a page
loaded while the server starts shows no banner for a link about to come up."""


@dataclass(frozen=True)
class LinkDown:
    endpoints: tuple[str, ...]
    since: float


class LinkBoard:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._state: dict[str, str] = {}
        self._down_since: dict[str, float] = {}
        self._ever_up: set[str] = set()

    def tap(self, event: Event) -> None:
        """An event bus tap (synchronous, never blocks)."""
        if event.kind == "link_status":
            self.note(event.payload)

    def note(self, status: Any) -> None:
        endpoint = str(getattr(status, "endpoint", "") or "")
        state = str(getattr(status, "state", "") or "")
        if not endpoint or not state:
            return
        self._state[endpoint] = state
        if state == "connected":
            self._ever_up.add(endpoint)
            self._down_since.pop(endpoint, None)
        else:
            since = getattr(status, "since", None)
            self._down_since.setdefault(endpoint, float(since or self.clock()))

    def down(self, configured: set[str] | None = None) -> LinkDown | None:
        """The links down now (of ``configured`` endpoints, when given), or None."""
        now = self.clock()
        found = []
        for endpoint, since in self._down_since.items():
            if configured is not None and endpoint not in configured:
                continue
            first_try = endpoint not in self._ever_up and self._state.get(endpoint) == "connecting"
            if first_try and now - since < CONNECT_GRACE_SECONDS:
                continue
            found.append((since, endpoint))
        if not found:
            return None
        found.sort()
        return LinkDown(tuple(e for _, e in found), found[0][0])


def configured_endpoints(settings: dict[str, Any]) -> set[str]:
    """``host:port`` of every link the settings configure (none without an AMI host)."""
    out: set[str] = set()
    try:
        configs = link_configs(settings)
    except ValueError:
        return out
    for cfg in configs:
        if not str(cfg.ami.get("host", "") or "").strip():
            continue
        try:
            ami = settings_from_config(cfg.ami)
        except ValueError:
            continue
        out.add(f"{ami.host}:{ami.port}")
    return out


def board(rt: Any) -> LinkBoard:
    """The process's board, made (and tapped onto the bus) on first use."""
    found = rt.extras.get("link_board")
    if found is None:
        found = rt.extras["link_board"] = LinkBoard(rt.clock)
        rt.bus.add_tap(found.tap)
        for link in list(rt.links.values()):
            found.note(link.status)
    return found


def link_down(rt: Any) -> LinkDown | None:
    """A configured link is down (and since when), or None."""
    configured = configured_endpoints(rt.settings)
    if not configured:
        return None
    return board(rt).down(configured)
