"""The live rig of ``tests/live``: the lab PBX (a real Asterisk 22.10.1 and a second
Asterisk playing the handsets 101/102/103 and a carrier, ``../shared/asterisk``), the CRM
running as in production (``run.py serve`` on a settings file pointing at the PBX's AMI and
recordings folder), and what its users would watch: every rep's and the manager's
Server-Sent Events stream and a webhook receiver on loopback.

Only one lab PBX can run on a machine (fixed ports), and other people's sessions record
captures with it too: the rig is started under an exclusive ``flock`` on
``/tmp/pbx-rig.lock`` and held only while the live tests run.  A rig that cannot start
fails the suite with its own message; nothing here ever skips.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
RIG_HOME = Path(os.environ.get("CRM_LIVE_RIG", ROOT.parent / "shared" / "asterisk"))
PBX = RIG_HOME / "pbx"
LOCK_PATH = "/tmp/pbx-rig.lock"
LAST_RUN = Path("/tmp/crm-live-rig.last")
"""The run dir of the rig this suite started last, so a rig we left behind (a killed
pytest) is brought down before the next start instead of blocking the ports."""
LOCK_WAIT = float(os.environ.get("CRM_LIVE_LOCK_WAIT", "900"))
PASSWORD = "live-test-pass-1"
SECRET_KEY = "live-test-secret-key-0123456789abcdef0123456789"
HOOK_SECRET = "live-hook-secret"
REPS = {"alice": "101", "bob": "102", "carol": "103"}
"""The CRM's reps and the lab handsets they sit at."""
WATCHERS = ("alice", "bob", "carol", "maria", "ada")


class RigError(RuntimeError):
    """The lab PBX could not be started or stopped; the message says why."""


# -- the lab PBX -----------------------------------------------------------------------
class RigLock:
    """The machine-wide lock every user of the lab PBX takes while theirs is up."""

    def __init__(self, path: str = LOCK_PATH) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self, wait: float = LOCK_WAIT) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self._fd = fd
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(fd)
                    raise RigError(
                        f"the lab PBX lock {self.path} is still held by another process after "
                        f"{wait:.0f} s (someone else's rig is up); try again when it is free"
                    ) from None
                time.sleep(1.0)

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def _pbx(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(PBX), *args], capture_output=True, text=True,
                          timeout=timeout, check=False)  # fmt: skip


@dataclass
class Rig:
    """A running lab PBX in ``run_dir`` (``pbx up``), held under the lock."""

    run_dir: Path
    lock: RigLock
    up_seconds: float = 0.0
    lock_wait_seconds: float = 0.0

    @property
    def recordings(self) -> Path:
        return self.run_dir / "pbx" / "recordings"

    @classmethod
    def start(cls) -> Rig:
        if not PBX.is_file():
            raise RigError(f"the lab PBX script is not at {PBX} (set CRM_LIVE_RIG to its folder)")
        lock = RigLock()
        t_lock = time.monotonic()
        lock.acquire()
        waited = time.monotonic() - t_lock
        try:
            if LAST_RUN.exists():  # ours, left behind by a killed run: bring it down first
                stale = LAST_RUN.read_text().strip()
                if stale and Path(stale).is_dir():
                    _pbx("down", stale, timeout=120)
                LAST_RUN.unlink(missing_ok=True)
            run_dir = Path(tempfile.mkdtemp(prefix="crmlive-", dir="/tmp"))
            LAST_RUN.write_text(str(run_dir))
            t0 = time.monotonic()
            r = _pbx("up", str(run_dir))
            if r.returncode != 0:
                _pbx("down", str(run_dir), timeout=120)
                LAST_RUN.unlink(missing_ok=True)
                raise RigError(f"the lab PBX did not start (pbx up exit {r.returncode}):\n"
                               f"{r.stdout}\n{r.stderr}")  # fmt: skip
            return cls(run_dir, lock, time.monotonic() - t0, waited)
        except BaseException:
            lock.release()
            raise

    def stop(self) -> None:
        try:
            r = _pbx("down", str(self.run_dir), timeout=120)
            if r.returncode != 0:
                sys.stderr.write(f"pbx down: {r.stdout}{r.stderr}\n")
            LAST_RUN.unlink(missing_ok=True)
            shutil.rmtree(self.run_dir, ignore_errors=True)
        finally:
            self.lock.release()

    def cli(self, command: str) -> str:
        return _pbx("cli", str(self.run_dir), command, timeout=60).stdout

    def pid(self) -> int:
        return int((self.run_dir / "pbx" / "var" / "run" / "asterisk.pid").read_text().strip())

    def lab(self) -> Any:
        """A ``tools/lab.py`` ``Lab`` on this rig (use ``async with``)."""
        tools = str(RIG_HOME / "tools")
        if tools not in sys.path:
            sys.path.insert(0, tools)
        from lab import Lab  # the rig's own driver (stdlib only)

        return Lab(str(self.run_dir))

    def restart_pbx(self) -> None:
        """Start the rig again after its PBX was killed: ``pbx down`` stops the
        simulator, ``pbx up`` starts both and waits for the handsets."""
        _pbx("down", str(self.run_dir), timeout=120)
        r = _pbx("up", str(self.run_dir))
        if r.returncode != 0:
            raise RigError(f"pbx up after the kill failed:\n{r.stdout}\n{r.stderr}")


# -- HTTP as a user sees it ------------------------------------------------------------
@dataclass
class Resp:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class Http:
    """A blocking HTTP client for one identity: a bearer token (the API) or a browser
    session (cookies and the page's CSRF token)."""

    def __init__(self, base: str, token: str | None = None) -> None:
        self.base = base
        self.token = token
        self.csrf = ""
        self.jar = CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.jar), _NoRedirect()
        )

    def request(self, method: str, path: str, *, json_body: Any = None,
                form: dict[str, str] | None = None, headers: dict[str, str] | None = None,
                timeout: float = 30) -> Resp:  # fmt: skip
        hdrs = dict(headers or {})
        data = None
        if self.token:
            hdrs["Authorization"] = f"Bearer {self.token}"
        if json_body is not None:
            data = json.dumps(json_body).encode()
            hdrs["Content-Type"] = "application/json"
        elif form is not None:
            data = urllib.parse.urlencode(form).encode()
            hdrs["Content-Type"] = "application/x-www-form-urlencoded"
        if self.csrf and method != "GET":
            hdrs.setdefault("X-CSRF-Token", self.csrf)
        req = urllib.request.Request(self.base + path, data=data, headers=hdrs, method=method)
        try:
            with self.opener.open(req, timeout=timeout) as r:
                return Resp(r.status, dict(r.headers.items()), r.read())
        except urllib.error.HTTPError as e:
            return Resp(e.code, dict(e.headers.items()), e.read())

    def get(self, path: str, **kw: Any) -> Resp:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> Resp:
        return self.request("POST", path, **kw)

    def get_json(self, path: str) -> Any:
        r = self.get(path)
        assert r.status == 200, f"GET {path}: {r.status} {r.text[:500]}"
        return r.json()

    def login(self, username: str, password: str = PASSWORD) -> None:
        page = self.get("/login").text
        token = re.search(r'name="_csrf" value="([^"]+)"', page)
        assert token, "no CSRF token on /login"
        r = self.post("/login", form={"username": username, "password": password,
                                      "_csrf": token.group(1), "next": "/"})  # fmt: skip
        assert r.status in (302, 303), f"login {username}: {r.status} {r.text[:300]}"
        self.refresh_csrf()

    def refresh_csrf(self, path: str = "/") -> str:
        found = re.search(r'name="csrf-token" content="([^"]+)"', self.get(path).text)
        assert found, f"no csrf-token on {path}"
        self.csrf = found.group(1)
        return self.csrf


# -- the CRM as in production ----------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _toml(value: Any) -> str:
    return json.dumps(value)  # strings, numbers, lists and booleans read the same in TOML


def crm_config(workdir: Path, recordings: Path, hook_url: str, *, ami_user: str = "crm",
               ami_secret: str = "crmsecret") -> str:  # fmt: skip
    """The settings file the README's "Pointing the CRM at it" prescribes, plus a temp
    SQLite database, short timers so the suite is quick, and the webhook receiver."""
    sections: dict[str, dict[str, Any]] = {
        "server": {"secret_key": SECRET_KEY, "key_file": str(workdir / "secret.key"),
                   "log_level": "INFO"},
        "database": {"url": f"sqlite:///{workdir / 'crm.db'}"},
        "ami": {"host": "127.0.0.1", "port": 5038, "username": ami_user, "secret": ami_secret,
                "ping_interval": PING_INTERVAL, "ping_timeout": 2.0, "backoff_initial": 0.2,
                "backoff_max": 1.0},
        "pbx": {"trunk_endpoints": ["trunk"], "trunk_contexts": ["from-trunk"],
                "extension_pattern": r"\d{3}", "own_numbers": ["5551000", "5551002", "5552000"],
                "recording_vars": ["MIXMONITOR_FILENAME", "REC_FILE", "CALLFILENAME"],
                "correlation_var": "CRM_CALL_ID", "finish_grace": 1.0},
        "dial": {"channel_template": "PJSIP/{ext}", "context": "from-internal",
                 "international_prefix": "00", "ring_timeout_s": 10.0,
                 "per_user_per_minute": 60},
        # the receiver listens on loopback: allowed explicitly (a real install refuses it)
        "webhooks": {"allow_private_targets": True, "timeout": 5.0, "max_attempts": 3,
                     "backoff_initial": 0.2, "backoff_max": 1.0,
                     "targets": [{"url": hook_url, "secret": HOOK_SECRET}]},
        "numbers": {"default_region": "US"},
        "leads": {"create_on": "every_call"},
        "recordings": {"directory": str(recordings), "media_dir": str(workdir / "media"),
                       "check_interval_seconds": 1},
    }  # fmt: skip
    lines: list[str] = []
    for name, values in sections.items():
        lines.append(f"[{name}]")
        for key, value in values.items():
            if isinstance(value, list) and value and isinstance(value[0], dict):
                items = ", ".join(
                    "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in item.items()) + " }"
                    for item in value
                )
                lines.append(f"{key} = [{items}]")
            else:
                lines.append(f"{key} = {_toml(value)}")
    return "\n".join(lines) + "\n"


class Crm:
    """``run.py serve`` as a subprocess on a free port, with its users and an API token."""

    def __init__(self, workdir: Path, recordings: Path, hook_url: str, *,
                 ami_user: str = "crm", ami_secret: str = "crmsecret") -> None:  # fmt: skip
        self.workdir = workdir
        self.config = workdir / "crm.toml"
        self.config.write_text(crm_config(workdir, recordings, hook_url, ami_user=ami_user,
                                          ami_secret=ami_secret))  # fmt: skip
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = workdir / "serve.log"
        self.popen: subprocess.Popen[bytes] | None = None
        self.token = ""
        self.rep_token = ""

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CRM__")}
        env["PYTHONUNBUFFERED"] = "1"
        env["CRM_PASSWORD"] = PASSWORD
        return env

    def run(self, *args: str) -> str:
        r = subprocess.run([sys.executable, str(ROOT / "run.py"), "--config", str(self.config),
                            *args], capture_output=True, text=True, env=self._env(), cwd=ROOT,
                           timeout=120, check=False)  # fmt: skip
        assert r.returncode == 0, f"run.py {' '.join(args)}: {r.stdout}{r.stderr}"
        return r.stdout

    def setup_users(self) -> None:
        for user, ext in REPS.items():
            self.run("create-user", user, "--name", user.title(), "--role", "rep",
                     "--extension", ext)  # fmt: skip
        self.run("create-user", "maria", "--name", "Maria Manager", "--role", "manager")
        self.run("create-user", "ada", "--name", "Ada Admin", "--role", "admin")
        self.token = self.run("create-token", "ada", "live tests").strip().splitlines()[-1]
        self.rep_token = self.run("create-token", "alice", "alice's CRM sync").strip().split()[-1]

    def start(self) -> None:
        cmd = [sys.executable, str(ROOT / "run.py"), "--config", str(self.config), "serve",
               "--port", str(self.port), "--host", "127.0.0.1"]  # fmt: skip
        with self.log.open("ab") as out:
            self.popen = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                          env=self._env(), cwd=ROOT)  # fmt: skip
        self.wait_link("connected", 60)

    def health(self) -> dict[str, Any]:
        try:
            with urllib.request.urlopen(self.base + "/healthz", timeout=5) as r:
                return json.loads(r.read())
        except (OSError, ValueError):
            return {}

    def wait_link(self, state: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen is not None and self.popen.poll() is not None:
                raise RuntimeError(f"run.py serve exited:\n{self.log_tail()}")
            if self.health().get("link") == state:
                return
            time.sleep(0.2)
        raise TimeoutError(f"link not {state} after {timeout:g} s ({self.health()}):\n"
                           f"{self.log_tail()}")  # fmt: skip

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(20)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(5)

    def api(self) -> Http:
        return Http(self.base, self.token)

    def browser(self, username: str) -> Http:
        http = Http(self.base)
        http.login(username)
        return http


# -- what users watch: SSE streams and webhooks -----------------------------------------
@dataclass
class Hook:
    at: float
    event: str
    payload: dict[str, Any]
    signature_ok: bool

    def linkedid(self) -> str | None:
        p = self.payload
        return p.get("linkedid") or (p.get("call") or {}).get("linkedid")


@dataclass
class Observer:
    """A thread with its own event loop holding every watcher's ``/events`` stream and
    the webhook receiver, so the tests (each on their own loop) read what arrived."""

    hook_port: int = field(default_factory=free_port)
    messages: dict[str, list[tuple[float, dict[str, Any]]]] = field(default_factory=dict)
    hooks: list[Hook] = field(default_factory=list)
    connected: dict[str, threading.Event] = field(default_factory=dict)
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _tasks: list[Any] = field(default_factory=list)

    @property
    def hook_url(self) -> str:
        return f"http://127.0.0.1:{self.hook_port}/hooks"

    def start(self) -> None:
        ready = threading.Event()
        failed: list[BaseException] = []
        self._loop = asyncio.new_event_loop()

        def run() -> None:
            assert self._loop is not None
            asyncio.set_event_loop(self._loop)
            try:
                self._loop.run_until_complete(self._serve_hooks())
            except BaseException as exc:  # reported by start(), in the test's thread
                failed.append(exc)
                return
            finally:
                ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="live-observer", daemon=True)
        self._thread.start()
        if not ready.wait(20) or failed:
            raise RuntimeError("the webhook receiver did not start") from (
                failed[0] if failed else None
            )

    def _submit(self, coro: Any) -> Any:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    async def _serve_hooks(self) -> None:
        import hashlib
        import hmac

        from aiohttp import web

        from web import webhooks

        def signed(headers: Any, body: bytes) -> bool:
            verify = getattr(webhooks, "verify", None)  # the receiver's check, if published
            if verify is not None:
                return bool(verify(HOOK_SECRET, headers, body))
            want = "sha256=" + hmac.new(HOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
            return hmac.compare_digest(want, headers.get("X-CRM-Signature", ""))

        async def receive(request: web.Request) -> web.Response:
            body = await request.read()
            envelope = json.loads(body)  # {"event", "sent_at", "data"}
            self.hooks.append(Hook(time.time(), request.headers.get("X-CRM-Event", ""),
                                   envelope.get("data") or {}, signed(request.headers, body)))
            return web.Response(status=204)

        app = web.Application()
        app.router.add_post("/hooks", receive)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.hook_port).start()
        self._tasks.append(runner)

    def watch(self, base: str, usernames: tuple[str, ...] = WATCHERS) -> None:
        for name in usernames:
            self.messages[name] = []
            self.connected[name] = threading.Event()
            self._submit(self._sse(base, name))
        for name in usernames:
            if not self.connected[name].wait(30):
                raise RuntimeError(f"the SSE stream of {name} did not connect")

    async def _sse(self, base: str, username: str) -> None:
        import aiohttp

        timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
        while True:
            try:
                async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
                    async with s.get(base + "/login") as r:
                        token = re.search(r'name="_csrf" value="([^"]+)"', await r.text())
                    assert token
                    form = {"username": username, "password": PASSWORD,
                            "_csrf": token.group(1), "next": "/"}  # fmt: skip
                    async with s.post(base + "/login", data=form, allow_redirects=False) as r:
                        assert r.status in (302, 303)
                    async with s.get(base + "/events", timeout=timeout) as resp:
                        async for raw in resp.content:
                            line = raw.decode().rstrip("\r\n")
                            if line.startswith(": connected"):
                                self.connected[username].set()
                            elif line.startswith("data: "):
                                self.messages[username].append((time.time(),
                                                                json.loads(line[6:])))
            except asyncio.CancelledError:
                raise
            except Exception:  # the server restarting: connect again
                pass
            await asyncio.sleep(0.5)

    def stop(self) -> None:
        if self._loop is None:
            return
        loop = self._loop

        async def shutdown() -> None:
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()
            for runner in self._tasks:
                with contextlib.suppress(Exception):
                    await runner.cleanup()

        with contextlib.suppress(Exception):
            self._submit(shutdown()).result(10)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    # -- what arrived ------------------------------------------------------------------
    def progress(self, username: str, linkedid: str) -> list[dict[str, Any]]:
        """The ``call_progress`` messages this watcher got about a call, in order."""
        return [m["data"] for _, m in list(self.messages[username])
                if m.get("kind") == "call_progress" and m["data"].get("linkedid") == linkedid]

    def popped(self, username: str, linkedid: str) -> bool:
        """Whether this watcher's screen showed the ringing pop for the call."""
        return any(d.get("pop") == "ringing" for d in self.progress(username, linkedid))

    def pop_open(self, username: str, linkedid: str) -> bool:
        """Whether the last word this watcher got about the call leaves a pop showing."""
        seen = self.progress(username, linkedid)
        return bool(seen) and seen[-1].get("pop") is not None

    def clicks(self, username: str, originate_id: str) -> list[dict[str, Any]]:
        """The ``click_progress`` states this rep saw for one click, in order."""
        return [m["data"] for _, m in list(self.messages[username])
                if m.get("kind") == "click_progress"
                and m["data"].get("originate_id") == originate_id]  # fmt: skip

    def hooks_for(self, linkedid: str) -> list[Hook]:
        return [h for h in list(self.hooks) if h.linkedid() == linkedid]


PING_INTERVAL = 2.0
"""Seconds between the CRM's AMI pings: on a quiet call the link hears the PBX at least
this often, so a call cut by the PBX dying ends at most this long before the kill."""


def wait_for(check: Callable[[], Any], timeout: float, what: str, every: float = 0.3) -> Any:
    """Poll until ``check()`` returns something truthy; fail saying ``what`` did not."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)
