"""Click-to-call: a rep clicks a number, their own phone rings, then the customer's.

Everything below the HTTP layer: checks (the number parses, is not blocked, the rep
dials from their own extension, is not over their rate limit), double-click protection,
the audit entry, one Async Originate through the AMI link, and the progress the UI shows
live on the event bus (``click_progress``, to the rep only)::

    ringing_you -> dialling -> connected -> ended
         \\------------\\----> failed (reason in words)

Progress comes from two sources, whichever is first: the link's own answer to the
Originate, and the call facts the ingest publishes (``call_progress``,
``originate_result``, ``call_recorded``) matched by ``originate_id``.  A state only moves
forward, so the two never contradict each other.  The one exception is "PBX link down":
the PBX may still have placed a call whose answer we lost, so later evidence of that call
(after the reconnect and resync) takes the click out of ``failed`` again.

The Originate is never sent twice: a double click (same rep and number within a few
seconds, or the same ``request_key``) returns the first click's result, and the link
itself never re-sends an action after a reconnect.

With several web processes on one PostgreSQL, a ``router`` picks the link for the rep's
extension: this process's own when it consumes that link, else a ``RelayedLink`` that
hands the Originate to the process that does (``crm.originate_relay``).  Everything else
(checks, dedupe, rate limit, audit, progress) happens here, in the process the rep's
browser talks to, exactly as for a local link.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import KW_ONLY, InitVar, dataclass, field, replace
from typing import Any, Literal, Protocol

from ami_bridge.dialrules import DialRuleError, DialRules
from ami_bridge.facts import OriginateResult
from ami_bridge.originate import LINK_DOWN, OriginateRequest

from .errors import InvalidInput
from .events import Event, EventBus
from .models import User
from .phones import normalize

log = logging.getLogger(__name__)

ClickState = Literal["ringing_you", "dialling", "connected", "ended", "failed"]
STATES: tuple[ClickState, ...] = ("ringing_you", "dialling", "connected", "ended", "failed")
_RANK: dict[str, int] = {"ringing_you": 0, "dialling": 1, "connected": 2, "ended": 3, "failed": 3}

PHONE_DID_NOT_ANSWER = "your phone did not answer"
NUMBER_DID_NOT_ANSWER = "the number did not answer"
UNREACHABLE = "number unreachable"
BUSY = "busy"
NOT_PERMITTED = (
    "the PBX refused: the CRM's AMI user has no permission to originate calls "
    "(an admin must add originate to its write= permissions)"
)
_REASON_WORDS: dict[int, str] = {
    0: UNREACHABLE,
    1: UNREACHABLE,
    3: PHONE_DID_NOT_ANSWER,
    5: BUSY,
    8: UNREACHABLE,
}


class ClickToCallError(InvalidInput):
    """A click refused before anything was dialled; ``message`` is fit for the rep.

    ``code``: ``bad_number``, ``blocked``, ``no_extension``, ``not_your_extension``,
    ``bad_extension``, ``rate_limited``, ``inactive``.
    """

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@dataclass(frozen=True, slots=True)
class ClickResult:
    """Where one click stands; ``duplicate`` marks the answer to a double click."""

    originate_id: str
    number: str
    """The number called, E.164."""
    dial_string: str
    extension: str
    state: ClickState
    reason: str | None = None
    duplicate: bool = False


class OriginateLink(Protocol):
    """What click-to-call needs of ``ami_bridge.link.AmiLink`` (and the relay's desk of a
    link it consumes: ``crm.originate_relay``)."""

    @property
    def status(self) -> Any: ...

    async def originate(
        self, req: OriginateRequest, timeout: float | None = None
    ) -> OriginateResult: ...


Router = Callable[[User, str], Awaitable[OriginateLink | None]]
"""The link to send a rep's click through (their extension given), or None: none."""
READY_STATES = ("connected", "relayed")
"""Link states a click is sent in; "relayed": another process consumes the link and
answers for its state (``crm.originate_relay.RelayedLink``)."""


class Auditor(Protocol):
    """What click-to-call needs of ``CrmService``."""

    async def click_to_call(self, actor: str, number: str, originate_id: str) -> None: ...


@dataclass(eq=False, slots=True)
class _Click:
    user_id: int
    result: ClickResult
    created: float
    request_key: str | None
    ready: asyncio.Future[None]
    soft_failure: bool = False
    recovered: bool = False
    task: asyncio.Task[None] | None = field(default=None, repr=False)


def reason_words(result: OriginateResult) -> str:
    """Why an Originate failed, as the rep reads it."""
    if result.reason_text == LINK_DOWN:
        return LINK_DOWN
    if result.reason is None:
        if "permission denied" in result.reason_text.lower():
            return NOT_PERMITTED
        return f"the PBX did not place the call ({result.reason_text})"
    fallback = f"the call could not be placed (reason {result.reason})"
    return _REASON_WORDS.get(result.reason, fallback)


@dataclass(eq=False, repr=False)  # one per process, by identity; repr never shows settings
class ClickToCall:
    """Click-to-call for one PBX link (its ``rules``).

    ``link`` may be None (no PBX configured) or down: the click then fails at once with
    "PBX link down".  With a ``router`` (several processes, or several PBX links), the
    router's choice for the rep's extension is used instead of ``link``.  ``blocked``
    holds numbers (any form the default region reads) or E.164 prefixes ending in ``*``
    (``+1900*``).
    """

    service: Auditor
    link: OriginateLink | None
    rules: DialRules
    bus: EventBus
    _: KW_ONLY
    blocked: InitVar[Iterable[str]] = ()
    per_user_per_minute: int = 10
    clock: Callable[[], float] = time.time
    default_region: InitVar[str | None] = None
    dedupe_seconds: float = 5.0
    request_key_seconds: float = 600.0
    correlation_var: str = "CRM_CALL_ID"
    router: Router | None = None
    region: str = field(init=False)
    _blocked: frozenset[str] = field(init=False)
    _blocked_prefixes: tuple[str, ...] = field(init=False)
    _clicks: OrderedDict[str, _Click] = field(init=False, default_factory=OrderedDict)
    refused_at: float | None = field(init=False, default=None)
    """When the PBX last refused an Originate for want of permission (the admin
    page says so until a click goes through)."""
    _recent: dict[tuple[int, str], _Click] = field(init=False, default_factory=dict)
    _keys: dict[tuple[int, str], _Click] = field(init=False, default_factory=dict)
    _rates: dict[int, deque[float]] = field(init=False, default_factory=dict)
    _follower: asyncio.Task[None] | None = field(init=False, default=None)

    def __post_init__(self, blocked: Iterable[str], default_region: str | None) -> None:
        if self.per_user_per_minute < 1:
            raise ValueError("per_user_per_minute must be at least 1")
        policy = getattr(self.service, "policy", None)
        self.region = default_region or getattr(policy, "default_region", None) or "US"
        self._blocked, self._blocked_prefixes = self._read_blocked(blocked)

    def _read_blocked(self, entries: Iterable[str]) -> tuple[frozenset[str], tuple[str, ...]]:
        exact: set[str] = set()
        prefixes: list[str] = []
        for entry in entries:
            text = entry.strip()
            if text.endswith("*"):
                head = text[:-1].strip()
                if not head.startswith("+") or not head[1:].isdigit():
                    raise ValueError(f"blocked prefix must be + and digits, then *: {entry!r}")
                prefixes.append(head)
                continue
            e164 = normalize(text, self.region)
            if e164 is None:
                raise ValueError(f"blocked number is not a phone number: {entry!r}")
            exact.add(e164)
        return frozenset(exact), tuple(prefixes)

    # -- the click ---------------------------------------------------------------------
    # Alike in shape to convert_lead and AmiLink.__init__: options, not one job to share.
    async def start(
        self,
        user: User,
        number: str,
        extension: str | None = None,
        request_key: str | None = None,
    ) -> ClickResult:
        """Check, dedupe, audit and send one click-to-call; returns at once (the Originate
        is on the wire, or the click already failed) with the state to show first.
        Raises ``ClickToCallError`` when nothing may be dialled."""
        if user.id is None or not user.active:
            raise ClickToCallError("This account cannot place calls.", "inactive")
        ext = self._own_extension(user, extension)
        e164 = self._parse(number)
        now = self.clock()
        self._prune(now)
        first_click = self._duplicate_of(user.id, e164, request_key, now)
        if first_click is not None:
            await asyncio.shield(first_click.ready)
            return replace(first_click.result, duplicate=True)
        if self.is_blocked(e164):
            raise ClickToCallError("This number is on the blocked list and cannot be called.",
                                   "blocked")  # fmt: skip
        self._take_rate_slot(user.id, now)
        try:
            dial = self.rules.to_dial_string(e164)
        except DialRuleError as exc:
            raise ClickToCallError(f"This PBX cannot dial that: {exc}", "bad_number") from None
        try:
            channel = self.rules.channel_for(ext)
        except DialRuleError:
            raise ClickToCallError(
                f"Extension {ext} cannot be rung by this PBX; ask an admin.", "bad_extension"
            ) from None
        originate_id = f"crm-{uuid.uuid4().hex}"
        click = _Click(
            user_id=user.id,
            result=ClickResult(originate_id, e164, dial, ext, "ringing_you"),
            created=now,
            request_key=request_key,
            ready=asyncio.get_running_loop().create_future(),
        )
        self._register(click, e164)
        try:
            # No audit entry, no call: the log must hold every click-to-call.
            await self.service.click_to_call(user.username, e164, originate_id)
        except BaseException as exc:
            self._forget(click, e164)
            click.ready.set_exception(exc)
            click.ready.exception()  # retrieved: a double click that never came is fine
            raise
        link = await self._route(user, ext)
        self._dispatch(click, channel, link)
        click.ready.set_result(None)
        # One step of the task puts the action on the wire (AmiLink.originate has no
        # await before it), so the rep's answer comes back with the Originate sent.
        await asyncio.sleep(0)
        return click.result

    def status(self, originate_id: str) -> ClickResult | None:
        """The latest state of a click (for a page that was reloaded)."""
        click = self._clicks.get(originate_id)
        return click.result if click is not None else None

    def is_blocked(self, e164: str) -> bool:
        return e164 in self._blocked or any(e164.startswith(p) for p in self._blocked_prefixes)

    async def aclose(self) -> None:
        """Stop following the bus and stop waiting for Originates in flight (the PBX
        still places those; their call records arrive through the ingest as usual)."""
        tasks = [c.task for c in self._clicks.values() if c.task is not None and not c.task.done()]
        for task in tasks:
            task.cancel()
        if self._follower is not None:
            self._follower.cancel()
            tasks.append(self._follower)
            self._follower = None
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- checks ------------------------------------------------------------------------
    def _own_extension(self, user: User, extension: str | None) -> str:
        if not user.extensions:
            raise ClickToCallError(
                "You have no phone extension yet; ask an admin to assign one.", "no_extension"
            )
        if extension is None:
            return user.extensions[0]
        extension = extension.strip()
        if extension not in user.extensions:
            raise ClickToCallError(
                "You can only call from your own phone; that extension is not yours.",
                "not_your_extension",
            )
        return extension

    def _parse(self, number: str) -> str:
        text = (number or "").strip()
        if not text:
            raise ClickToCallError("Enter a number to call.", "bad_number")
        e164 = None if any(ord(c) < 32 for c in text) else normalize(text, self.region)
        if e164 is None:
            shown = "".join(c if c.isprintable() else " " for c in text[:40])
            shown += "..." if len(text) > 40 else ""
            raise ClickToCallError(
                f"{shown!r} is not a phone number that can be dialled.", "bad_number"
            )
        return e164

    def _take_rate_slot(self, user_id: int, now: float) -> None:
        times = self._rates.setdefault(user_id, deque())
        while times and times[0] <= now - 60.0:
            times.popleft()
        if len(times) >= self.per_user_per_minute:
            wait = max(1, int(times[0] + 60.0 - now + 0.999))
            raise ClickToCallError(
                f"You are dialling too fast (at most {self.per_user_per_minute} calls a "
                f"minute); try again in {wait} s.",
                "rate_limited",
            )
        times.append(now)

    def _duplicate_of(
        self, user_id: int, e164: str, request_key: str | None, now: float
    ) -> _Click | None:
        if request_key is not None:
            click = self._keys.get((user_id, request_key))
            if click is not None:
                return click
        click = self._recent.get((user_id, e164))
        if click is not None and now - click.created < self.dedupe_seconds:
            return click
        return None

    def _register(self, click: _Click, e164: str) -> None:
        self._clicks[click.result.originate_id] = click
        self._recent[(click.user_id, e164)] = click
        if click.request_key is not None:
            self._keys[(click.user_id, click.request_key)] = click

    def _forget(self, click: _Click, e164: str) -> None:
        self._clicks.pop(click.result.originate_id, None)
        if self._recent.get((click.user_id, e164)) is click:
            del self._recent[(click.user_id, e164)]
        if click.request_key is not None:
            self._keys.pop((click.user_id, click.request_key), None)

    def _prune(self, now: float) -> None:
        for key, click in list(self._recent.items()):
            if now - click.created >= self.dedupe_seconds:
                del self._recent[key]
        for key, click in list(self._keys.items()):
            if now - click.created >= self.request_key_seconds:
                del self._keys[key]
        while len(self._clicks) > 10000:
            self._clicks.popitem(last=False)

    # -- sending -----------------------------------------------------------------------
    async def _route(self, user: User, extension: str) -> OriginateLink | None:
        """The link for this click: the router's choice, else ``link``.  A router that
        fails (database down) makes the click fail as "PBX link down", never a 500."""
        if self.router is None:
            return self.link
        try:
            return await self.router(user, extension)
        except Exception:
            log.exception("click-to-call: no link could be chosen for extension %s", extension)
            return None

    def _dispatch(self, click: _Click, channel: str, link: OriginateLink | None) -> None:
        """Publish the first state and put the Originate on the wire (or fail it)."""
        self._publish(click)
        if link is None or getattr(link.status, "state", None) not in READY_STATES:
            self._fail(click, LINK_DOWN, soft=True)
            return
        self._ensure_follower()
        r = click.result
        req = OriginateRequest(
            action_id=r.originate_id,
            channel=channel,
            exten=r.dial_string,
            context=self.rules.context,
            caller_id=self.rules.caller_id_for(r.dial_string),
            timeout_ms=int(self.rules.ring_timeout_s * 1000),
            correlation_var=self.correlation_var,
        )
        click.task = asyncio.create_task(
            self._send(click, link, req), name=f"originate-{r.originate_id}"
        )

    async def _send(self, click: _Click, link: OriginateLink, req: OriginateRequest) -> None:
        try:
            result = await link.originate(req)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("click-to-call %s: originate failed", req.action_id)
            self._fail(click, f"the call could not be placed ({exc})")
            return
        self._on_originate_result(click, result)

    # -- progress ----------------------------------------------------------------------
    def _on_originate_result(self, click: _Click, result: OriginateResult) -> None:
        if result.success:
            self.refused_at = None
            self._advance(click, "dialling", from_pbx=True)
        elif result.reason_text == LINK_DOWN:
            self._fail(click, LINK_DOWN, soft=True)
        else:
            words = reason_words(result)
            if words == NOT_PERMITTED:
                self.refused_at = result.at
                log.error("click-to-call: the PBX refuses Originate to this AMI user "
                          "(no originate write permission)")  # fmt: skip
            self._fail(click, words, from_pbx=True)

    def _on_call_progress(self, click: _Click, progress: Any) -> None:
        state = getattr(progress, "state", None)
        ext = click.result.extension
        if state == "ringing":
            ringing = tuple(getattr(progress, "ringing", ()) or ())
            if ext in ringing:
                if click.soft_failure:
                    self._advance(click, "ringing_you", from_pbx=True)
            elif ringing:  # another phone rings (an extension was dialled): the customer's
                self._advance(click, "dialling", from_pbx=True)
            # Nobody ringing: the rep's phone stopped, answered or given up; the
            # Originate's answer says which (success: dialling, failure: why).
        elif state == "answered":
            if getattr(progress, "answered_by", None) == ext:
                self._advance(click, "dialling", from_pbx=True)
            else:
                self._advance(click, "connected", from_pbx=True)
        elif state == "ended" and click.result.state == "connected":
            self._advance(click, "ended", from_pbx=True)
        # Ended unanswered: the call record, published next, says why.

    def _on_call_recorded(self, click: _Click, call: Any) -> None:
        if getattr(call, "answered", False):
            self._advance(click, "connected", from_pbx=True)
            self._advance(click, "ended", from_pbx=True)
            return
        outcome = getattr(call, "outcome", "failed")
        if outcome == "busy":
            reason = BUSY
        elif outcome in ("no_answer", "missed", "abandoned"):
            rep_answered = click.result.state == "dialling"
            reason = NUMBER_DID_NOT_ANSWER if rep_answered else PHONE_DID_NOT_ANSWER
        else:
            reason = UNREACHABLE
        self._fail(click, reason, from_pbx=True)

    def _advance(self, click: _Click, state: ClickState, *, from_pbx: bool = False) -> None:
        current = click.result.state
        if current == "failed":
            if not (click.soft_failure and from_pbx):
                return
            click.soft_failure = False  # the PBX placed the call after all
            click.recovered = True
        elif _RANK[state] <= _RANK[current]:
            return
        click.result = replace(click.result, state=state, reason=None)
        self._publish(click)

    def _fail(
        self, click: _Click, reason: str, *, soft: bool = False, from_pbx: bool = False
    ) -> None:
        current = click.result
        if soft and click.recovered:
            return  # a late echo of the drop; the PBX has told us what happened since
        if current.state == "failed":
            if not click.soft_failure or not from_pbx or reason == current.reason:
                return
        elif current.state in ("connected", "ended"):
            return
        click.soft_failure = soft
        click.result = replace(current, state="failed", reason=reason)
        self._publish(click)

    def _publish(self, click: _Click) -> None:
        r = click.result
        payload = {
            "originate_id": r.originate_id,
            "state": r.state,
            "reason": r.reason,
            "number": r.number,
            "extension": r.extension,
            "at": self.clock(),
        }
        self.bus.publish(Event("click_progress", payload, user_ids=frozenset({click.user_id})))

    # -- following the call facts -----------------------------------------------------
    def _ensure_follower(self) -> None:
        if self._follower is None or self._follower.done():
            sub = self.bus.subscribe(maxsize=10000)
            follow = sub.feed(self.on_event, log, "click-to-call: could not follow %s")
            self._follower = asyncio.create_task(follow, name="click-to-call-follower")

    def on_event(self, event: Event) -> None:
        """Take what the ingest published about a click's call (public for tests and for a
        web process that gets the bus events some other way, e.g. PostgreSQL NOTIFY)."""
        if event.kind == "originate_result":
            result = event.payload
            if click := self._click_of(result, "action_id"):
                self._on_originate_result(click, result)
        elif event.kind == "call_progress":
            progress = getattr(event.payload, "progress", event.payload)
            if click := self._click_of(progress, "originate_id"):
                self._on_call_progress(click, progress)
        elif event.kind == "call_recorded":
            call = getattr(event.payload, "call", event.payload)
            if click := self._click_of(call, "originate_id"):
                self._on_call_recorded(click, call)

    def _click_of(self, fact: Any, key: str) -> _Click | None:
        """The click whose ActionID the fact's ``key`` field carries, if it is ours."""
        return self._clicks.get(getattr(fact, key, None) or "")
