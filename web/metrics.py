"""Prometheus figures of one process: its PBX links, the calls it writes, its screen pops.

``GET /metrics`` serves them in Prometheus' text format.  Most are read from the parts
that already count them (``AmiLink.status``, the holding sink) when Prometheus scrapes,
so nothing is counted twice and a link restarted by the admin shows up under the same
name.  Two are counted here as things happen:

* ``crm_calls_written_total``: every finished call this process's ingest wrote, taken
  from the event bus (a tap, so it sees every event, never a dropped one; calls written
  by another process and relayed here are not counted twice);
* ``crm_screen_pop_latency_seconds``: for every screen pop, from the moment the link read
  the event that made the phone ring (``CallProgress.received_at``, a DialBegin) to the
  moment the SSE handler wrote the pop to the rep's browser connection.

Who may read them: requests from this machine (loopback, not relayed by a proxy) and
holders of an admin's API token; nobody else (401 without a token, 403 with another
role's).  Each runtime has its own registry, so several in one process (tests) never mix.
"""

from __future__ import annotations

import bisect
import collections
import ipaddress
import itertools
import math
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from crm.events import Event

if TYPE_CHECKING:
    from .runtime import Runtime

LINK_STATES = ("connecting", "connected", "login_failed", "disconnected")
POP_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0)


class Metrics:
    """The registry of one runtime and the two figures counted as they happen."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.calls_written = Counter(
            "crm_calls_written", "Finished calls written to the database by this process.",
            registry=self.registry,
        )  # fmt: skip
        self.pop_latency = _BulkHistogram(
            "crm_screen_pop_latency_seconds",
            "From reading the event that rings a rep's phone to writing the screen pop to "
            "their browser.",
            POP_BUCKETS,
        )
        self.registry.register(self.pop_latency)
        self._bound = False

    def bind(self, rt: Runtime) -> None:
        """Read the runtime's links and holding sink at every scrape; count its writes."""
        if self._bound:
            return
        self._bound = True
        self.registry.register(_RuntimeCollector(rt))
        rt.bus.add_tap(self._on_event)

    def _on_event(self, event: Event) -> None:
        if event.kind == "call_recorded" and event.origin is None:
            self.calls_written.inc()

    def observe_pops(self, received: list[float], now: float | None = None) -> None:
        """Pops written to a browser just now, each with its event's receive time."""
        now = time.time() if now is None else now
        self.pop_latency.observe_many(
            (max(0.0, now - at), n) for at, n in collections.Counter(received).items()
        )


class _BulkHistogram(Collector):
    """A histogram observed many values at a time, each with its count.

    A change of a call pops every browser of the reps it rings at once, and those pops
    share their event's receive time and their write's: hundreds of equal values per
    write.  ``prometheus_client``'s ``Histogram`` takes one value per call (a lock and
    a search of the buckets each), at 500 browsers a tenth of the hub's time; here each
    distinct value is counted once with its number.  Scraped as the same histogram
    (``_bucket``, ``_count``, ``_sum``)."""

    def __init__(self, name: str, documentation: str, buckets: Iterable[float]) -> None:
        self.name = name
        self.documentation = documentation
        self.bounds = (*sorted(float(b) for b in buckets), math.inf)
        self.counts = [0] * len(self.bounds)
        self.sum = 0.0

    def observe_many(self, values: Iterable[tuple[float, int]]) -> None:
        bounds, counts = self.bounds, self.counts
        for value, n in values:
            counts[bisect.bisect_left(bounds, value)] += n
            self.sum += value * n

    def describe(self) -> list[Metric]:
        return [self._family()]

    def collect(self) -> Iterator[Metric]:
        yield self._family()

    def _family(self) -> HistogramMetricFamily:
        cumulative = itertools.accumulate(self.counts)
        buckets = [(floatToGoString(b), float(c))
                   for b, c in zip(self.bounds, cumulative, strict=True)]  # fmt: skip
        return HistogramMetricFamily(
            self.name, self.documentation, buckets=buckets, sum_value=self.sum
        )


class _RuntimeCollector(Collector):
    """Link and holding figures, read when Prometheus scrapes."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def describe(self) -> list[Metric]:
        return []  # read at scrape time; nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("crm_link_up", "1 when the PBX link is connected.",
                               labels=["link"])  # fmt: skip
        state = GaugeMetricFamily("crm_link_state", "The PBX link's state (1 for the current "
                                  "one).", labels=["link", "state"])  # fmt: skip
        events = CounterMetricFamily("crm_link_events", "AMI messages read from the PBX "
                                     "(rate() of it: events per second).",
                                     labels=["link"])  # fmt: skip
        reconnects = CounterMetricFamily("crm_link_reconnects", "Connection attempts after "
                                         "the first.", labels=["link"])  # fmt: skip
        backlog = GaugeMetricFamily("crm_link_backlog", "Facts read from the PBX and "
                                    "waiting to be handled.", labels=["link"])  # fmt: skip
        backlog_max = GaugeMetricFamily("crm_link_backlog_max", "The bound of the backlog "
                                        "(ami.queue_max).", labels=["link"])  # fmt: skip
        full = GaugeMetricFamily("crm_link_backlog_full", "1 while the backlog is full and "
                                 "the socket is left unread (TCP back-pressure).",
                                 labels=["link"])  # fmt: skip
        pauses = CounterMetricFamily("crm_link_read_pauses", "Times the link stopped reading "
                                     "the socket because the backlog was full.",
                                     labels=["link"])  # fmt: skip
        behind = GaugeMetricFamily("crm_link_behind", "1 while the backlog is past the merge "
                                   "point (ami.merge_after): the handling of the PBX's "
                                   "events has fallen behind.", labels=["link"])  # fmt: skip
        merged = CounterMetricFamily("crm_link_merged_updates", "Live updates of a call "
                                     "replaced by a newer one while both waited (behind).",
                                     labels=["link"])  # fmt: skip
        restarts = CounterMetricFamily("crm_link_tracker_restarts", "Times the link's tracker "
                                       "process (ami.tracker_process) died and was "
                                       "replaced.", labels=["link"])  # fmt: skip
        for name, link in sorted(self.rt.links.items()):
            st = link.status
            restarts.add_metric([name], float(st.tracker_restarts))
            behind.add_metric([name], 1.0 if st.behind_since is not None else 0.0)
            merged.add_metric([name], float(st.merged))
            up.add_metric([name], 1.0 if st.state == "connected" else 0.0)
            for s in LINK_STATES:
                state.add_metric([name, s], 1.0 if st.state == s else 0.0)
            events.add_metric([name], float(st.events_total))
            reconnects.add_metric([name], float(st.reconnects))
            backlog.add_metric([name], float(st.backlog))
            backlog_max.add_metric([name], float(st.backlog_max))
            full.add_metric([name], 1.0 if st.full_since is not None else 0.0)
            pauses.add_metric([name], float(st.pauses))
        yield from (up, state, events, reconnects, backlog, backlog_max, full, pauses, behind,
                    merged, restarts)  # fmt: skip
        holding = self.rt.holding_status
        held = GaugeMetricFamily("crm_calls_held", "Finished calls waiting for the database "
                                 "(it refused them; retried).")  # fmt: skip
        held.add_metric([], float(holding.held if holding is not None else 0))
        yield held
        hub: Any = self.rt.extras.get("live_hub")
        clients = GaugeMetricFamily("crm_sse_clients", "Browser connections to /events.")
        clients.add_metric([], float(len(hub.clients) if hub is not None else 0))
        yield clients
        fanout: Any = self.rt.extras.get("fanout")
        if fanout is not None:
            fan = CounterMetricFamily(
                "crm_fanout_events", "Events between this process and the others on the "
                "database (several web processes): sent, received, and lost: dropped "
                "(too far behind), failed (the database refused), missed (another "
                "process's events that never came).", labels=["outcome"])  # fmt: skip
            for outcome in ("sent", "received", "dropped", "failed", "missed"):
                fan.add_metric([outcome], float(getattr(fanout, outcome)))
            yield fan


def is_local(remote: str | None, forwarded: bool) -> bool:
    """A request from this machine: a loopback peer that no proxy relayed (a proxy on
    the same machine would make every outside request look local)."""
    if forwarded or not remote:
        return False
    try:
        return ipaddress.ip_address(remote.split("%", 1)[0]).is_loopback
    except ValueError:
        return False
