"""After login the browser goes back where it came from, and only ever to this site
(ASVS 5.1.5): ``next`` is refused when it has control characters (tab, CR, LF, which
browsers and aiohttp drop), backslashes (browsers read them as slashes), a scheme or a
host once parsed, also when percent-encoded."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient
from yarl import URL

from tests.web.conftest import PASSWORD, People, csrf_of, login
from web.security import safe_next

HOSTILE = [
    "/%09/evil.example/phish", "/\t/evil.example/phish", "/\r/evil.example", "/\n/evil.example",
    "/%0d%0a/evil.example", "/%0a/evil.example", "\t//evil.example", " //evil.example",
    "//evil.example", "///evil.example", "////evil.example", "/\\evil.example",
    "\\\\evil.example", "/%5cevil.example", "/%5C%5Cevil.example", "/%2F/evil.example",
    "/%2f%2fevil.example", "%2F%2Fevil.example", "https://evil.example", "https:evil.example",
    "http:/evil.example", "javascript:alert(1)", "JaVaScRiPt:alert(1)", "data:text/html,x",
    "evil.example", "//evil.example@crm.local", "/\x00/evil.example", "/\x7f/evil.example",
    "/\u0085/evil.example", "/\u2028/evil.example", "/\u3000/evil.example",
]  # fmt: skip
FINE = ["/", "/calls?x=1", "/contacts/5/edit", "/calls?q=a%20b&page=2", "/leads#top"]


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_targets_go_home(value: str) -> None:
    assert safe_next(value) == "/"


@pytest.mark.parametrize("value", FINE)
def test_local_targets_are_kept(value: str) -> None:
    assert safe_next(value) == value


def _stays_here(location: str) -> bool:
    base = URL("http://crm.local/login")
    target = base.join(URL(location, encoded=True))
    return target.host == "crm.local" and target.scheme == "http"


async def test_the_login_form_never_sends_the_browser_away(
    client: TestClient, people: People
) -> None:
    problems = []
    for value in HOSTILE:
        client.session.cookie_jar.clear()
        token = await csrf_of(client)
        resp = await client.post("/login", allow_redirects=False, data={
            "username": "alice", "password": PASSWORD, "_csrf": token, "next": value})
        location = resp.headers.get("Location", "")
        if resp.status != 302 or location != "/":
            problems.append(f"{value!r} -> {resp.status} {location!r}")
    assert not problems, "\n".join(problems)


async def test_a_logged_in_visit_to_login_never_sends_the_browser_away(
    client: TestClient, people: People
) -> None:
    """``GET /login?next=...`` when logged in redirects at once: the reported case,
    ``next=/%09/evil.example/phish``, answered ``Location: //evil.example/phish``."""
    await login(client, "alice")
    problems = []
    for value in HOSTILE:
        resp = await client.get(URL("/login").with_query(next=value), allow_redirects=False)
        location = resp.headers.get("Location", "")
        if resp.status != 302 or not _stays_here(location) or location != "/":
            problems.append(f"{value!r} -> {resp.status} {location!r}")
    raw = await client.get(URL("/login?next=/%09/evil.example/phish", encoded=True),
                           allow_redirects=False)  # fmt: skip
    assert raw.headers["Location"] == "/"
    kept = await client.get(URL("/login").with_query(next="/calls?x=1"), allow_redirects=False)
    assert kept.headers["Location"] == "/calls?x=1"
    assert not problems, "\n".join(problems)
