"""Sessions, CSRF tokens, the login throttle, post-login redirects and the client's
address: the web layer's secrets and the rules around them.

A session is a signed cookie naming a row in the store (``web_sessions``): the signature
stops forgery, the row lets the server end a session (logout, "log out everywhere", a
password change, a deactivation, an idle or absolute timeout), and because the row is in
the store every web process of a PostgreSQL deployment sees the end at once.  The
signature also covers a fingerprint of the user's password hash, so a password changed
behind the store's back still ends every session.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import os
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

SESSION_COOKIE = "crm_session"
ANON_COOKIE = "crm_anon"
CSRF_FIELD = "_csrf"
CSRF_HEADER = "X-CSRF-Token"


def load_secret_key(configured: str, path: Path) -> bytes:
    """The configured key, else one generated once and kept in ``path`` (mode 0600)."""
    if configured:
        return configured.encode()
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32).encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key)
    return key


@dataclass(frozen=True, slots=True)
class Session:
    user_id: int
    issued: float
    nonce: str
    """The random session id: names the store row (by its SHA-256) and keys CSRF tokens."""

    @property
    def key(self) -> str:
        return session_key(self.nonce)


def session_key(nonce: str) -> str:
    """The store's id for a session: the SHA-256 of the cookie's random part."""
    return hashlib.sha256(nonce.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class SessionPolicy:
    """How long a session lives: ``idle`` seconds without a request, ``absolute``
    seconds after login, whichever comes first (ASVS 3.3.1, 3.3.2)."""

    idle: float = 12 * 3600.0
    absolute: float = 7 * 86400.0

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> SessionPolicy:
        server = settings.get("server", {})
        return cls(
            idle=float(server.get("session_idle_hours", 12.0)) * 3600.0,
            absolute=float(server.get("session_max_days", 7.0)) * 86400.0,
        )

    @property
    def touch_every(self) -> float:
        """Activity is written at most this often (not on every request)."""
        return min(60.0, self.idle / 10)

    def alive(self, created_at: float, last_seen_at: float, now: float) -> bool:
        return now - last_seen_at <= self.idle and now - created_at <= self.absolute


class Signer:
    def __init__(self, key: bytes, max_age: float = 7 * 86400) -> None:
        self._key = key
        self.max_age = max_age

    def _mac(self, text: str) -> str:
        digest = hmac.new(self._key, text.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    @staticmethod
    def _fingerprint(password_hash: str) -> str:
        return hashlib.sha256(password_hash.encode()).hexdigest()[:16]

    def issue(self, user_id: int, password_hash: str, now: float | None = None,
              nonce: str | None = None) -> str:  # fmt: skip
        """A cookie for a new session (or, given ``nonce``, the same session re-signed
        after its owner changed their password)."""
        issued = int(now if now is not None else time.time())
        nonce = nonce or secrets.token_urlsafe(24)
        body = f"{user_id}.{issued}.{nonce}"
        return f"{body}.{self._mac(body + '.' + self._fingerprint(password_hash))}"

    def peek(self, cookie: str) -> Session | None:
        """The session a cookie claims, before its signature is checked against the user."""
        parts = cookie.split(".")
        if len(parts) != 4:
            return None
        try:
            return Session(int(parts[0]), float(parts[1]), parts[2])
        except ValueError:
            return None

    def verify(self, cookie: str, password_hash: str, now: float | None = None,
               max_age: float | None = None) -> bool:  # fmt: skip
        """Genuine, signed for this password hash, and issued at most ``max_age`` (default
        the signer's) seconds ago."""
        session = self.peek(cookie)
        if session is None:
            return False
        now = now if now is not None else time.time()
        max_age = self.max_age if max_age is None else max_age
        if not (session.issued - 60 <= now <= session.issued + max_age):
            return False
        body, mac = cookie.rsplit(".", 1)
        expected = self._mac(body + "." + self._fingerprint(password_hash))
        return hmac.compare_digest(mac, expected)

    def derive(self, purpose: bytes) -> bytes:
        """A key for another use (recording links...), so the session key itself never
        signs anything else."""
        return hmac.new(self._key, b"derive:" + purpose, hashlib.sha256).digest()

    def csrf_token(self, nonce: str) -> str:
        return self._mac("csrf:" + nonce)

    def check_csrf(self, nonce: str, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf_token(nonce), token or "")


class LoginLimiter:
    """Growing delays after failed logins, per (username, address) and per address
    (ASVS 2.2.1).  Never per username alone: that would let anyone lock anyone out by
    typing wrong passwords for them.  After ``attempts`` failures the next try waits
    ``delay`` seconds, doubling with each further failure up to ``max_delay``; a key's
    failures are forgotten ``window`` seconds after its last one, and a success clears its
    (username, address) count.  One address gets ``address_attempts`` free failures over
    all usernames (password spraying) before the same delays start.  In memory, per
    process: a restart forgets, which is acceptable for slowing down guessing."""

    def __init__(self, attempts: int = 5, window: float = 900.0, *, delay: float = 5.0,
                 max_delay: float = 900.0, address_attempts: int = 20) -> None:  # fmt: skip
        self.attempts = attempts
        self.window = window
        self.delay = delay
        self.max_delay = max_delay
        self.address_attempts = address_attempts
        self._failures: dict[str, tuple[int, float]] = {}

    def _keys(self, username: str, address: str) -> tuple[tuple[str, int], ...]:
        return ((f"u:{username.lower()}|a:{address}", self.attempts),
                (f"a:{address}", self.address_attempts))  # fmt: skip

    def _count(self, key: str, now: float) -> tuple[int, float]:
        count, last = self._failures.get(key, (0, 0.0))
        if count and now - last > self.window:
            del self._failures[key]
            return 0, 0.0
        return count, last

    def _wait(self, failures: int, free: int) -> float:
        if failures < free:
            return 0.0
        return float(min(self.max_delay, self.delay * 2 ** min(failures - free, 30)))

    def retry_after(self, username: str, address: str, now: float | None = None) -> float:
        """Seconds until another attempt is allowed (0: allowed now)."""
        now = now if now is not None else time.time()
        wait = 0.0
        for key, free in self._keys(username, address):
            count, last = self._count(key, now)
            wait = max(wait, last + self._wait(count, free) - now)
        return max(wait, 0.0)

    def failed(self, username: str, address: str, now: float | None = None) -> None:
        now = now if now is not None else time.time()
        for key, _ in self._keys(username, address):
            count, _last = self._count(key, now)
            self._failures[key] = (count + 1, now)
        if len(self._failures) > 10_000:
            for key in list(self._failures):
                self._count(key, now)

    def succeeded(self, username: str, address: str) -> None:
        self._failures.pop(self._keys(username, address)[0][0], None)


# -- where a request comes from -----------------------------------------------------
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def trusted_networks(values: Iterable[str]) -> tuple[Network, ...]:
    """``server.trusted_proxies``: addresses or networks (``10.0.0.0/8``) of the reverse
    proxies whose ``X-Forwarded-For`` is believed."""
    texts = (str(v).strip() for v in values)
    return tuple(ipaddress.ip_network(t, strict=False) for t in texts if t)


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None


def client_address(remote: str | None, forwarded_for: Iterable[str],
                   trusted: tuple[Network, ...]) -> str:  # fmt: skip
    """The client's address: the peer, unless the peer is a trusted proxy; then the
    rightmost ``X-Forwarded-For`` entry that is not itself a trusted proxy (entries to
    its left are whatever the client wrote and prove nothing)."""
    peer = _ip(remote or "")
    if peer is None:
        return remote or "?"
    if not trusted or not any(peer in net for net in trusted):
        return str(peer)
    hops = [h for header in forwarded_for for h in header.split(",") if h.strip()]
    for hop in reversed(hops):
        ip = _ip(hop)
        if ip is None:
            return str(peer)  # a garbled chain: trust nothing past the proxy
        if not any(ip in net for net in trusted):
            return str(ip)
    return str(peer)


def cookie_secure(settings: Mapping[str, Any]) -> bool:
    """``server.secure_cookies``: true/false as set; ``auto`` (the default) is true
    unless the server listens on loopback only (the demo, a laptop)."""
    server = settings.get("server", {})
    value = server.get("secure_cookies", "auto")
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("true", "1", "yes"):
        return True
    if str(value).lower() in ("false", "0", "no"):
        return False
    host = str(server.get("host", "127.0.0.1")).strip("[]")
    if host == "localhost":
        return False
    ip = _ip(host)
    return not (ip is not None and ip.is_loopback)


# -- where a login may send the browser ---------------------------------------------
def _bad_char(ch: str) -> bool:
    """Controls (C0, DEL, C1) and whitespace other than the plain space."""
    code = ord(ch)
    return code < 0x20 or 0x7F <= code <= 0x9F or (ch.isspace() and ch != " ")


def safe_next(value: str | None) -> str:
    """A post-login target that stays on this site (ASVS 5.1.5): a path starting with
    one ``/``, no control characters or backslashes (browsers and aiohttp drop or turn
    them into ``/``), no scheme or host after parsing, also once percent-decoded."""
    if not value or len(value) > 2000:
        return "/"
    for text in (value, unquote(value)):
        if "\\" in text or any(_bad_char(ch) for ch in text):
            return "/"
        if not text.startswith("/") or text.startswith("//"):
            return "/"
        parts = urlsplit(text)
        if parts.scheme or parts.netloc or parts.path.startswith("//"):
            return "/"
    return value
