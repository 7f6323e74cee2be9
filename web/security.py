"""Sessions, CSRF tokens and the login rate limit: the web layer's only secrets.

Sessions are signed cookies rather than rows so a restart or a second web process
(PostgreSQL scale-out) keeps everyone logged in without shared session state.  The
signature also covers a fingerprint of the user's password hash, so changing a password
ends every other session of that user; the user row is re-read on every request, so a
deactivated user is out at once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

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

    def issue(self, user_id: int, password_hash: str, now: float | None = None) -> str:
        issued = int(now if now is not None else time.time())
        nonce = secrets.token_urlsafe(12)
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

    def verify(self, cookie: str, password_hash: str, now: float | None = None) -> bool:
        session = self.peek(cookie)
        if session is None:
            return False
        now = now if now is not None else time.time()
        if not (session.issued - 60 <= now <= session.issued + self.max_age):
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
    """At most ``attempts`` failed logins per ``window`` seconds per username and per
    address; a success clears the username's count.  In memory: a restart forgets, which
    is acceptable for slowing down guessing."""

    def __init__(self, attempts: int = 5, window: float = 300.0) -> None:
        self.attempts = attempts
        self.window = window
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, key: str, now: float) -> deque[float]:
        q = self._failures.setdefault(key, deque())
        while q and q[0] <= now - self.window:
            q.popleft()
        return q

    def retry_after(self, username: str, address: str, now: float | None = None) -> float:
        """Seconds until another attempt is allowed (0: allowed now)."""
        now = now if now is not None else time.time()
        wait = 0.0
        for key in (f"u:{username.lower()}", f"a:{address}"):
            q = self._recent(key, now)
            if len(q) >= self.attempts:
                wait = max(wait, q[0] + self.window - now)
        return wait

    def failed(self, username: str, address: str, now: float | None = None) -> None:
        now = now if now is not None else time.time()
        for key in (f"u:{username.lower()}", f"a:{address}"):
            self._recent(key, now).append(now)
        if len(self._failures) > 10_000:
            for key in [k for k, q in self._failures.items() if not self._recent(k, now)]:
                del self._failures[key]

    def succeeded(self, username: str) -> None:
        self._failures.pop(f"u:{username.lower()}", None)
