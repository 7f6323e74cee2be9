"""Every page of every role in Russian, Japanese and Chinese: no English from the catalog
is left, and the page says its language.

The pages are every GET route of the application (read from the router, with alice's
real objects in their paths, as the every-route security test does), fetched by a user of
each role who chose the language on My account. A page's visible text (text nodes, and
the ``title``, ``placeholder``, ``aria-label`` and ``alt`` attributes) is compared with
the English catalog: a text equal to a msgid, or matching a msgid with placeholders, is
English that leaked. Msgids whose translation is the same word (``PBX``, the product's
name) cannot leak and are left out.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from tests.security.conftest import Clients, World, clients, world  # noqa: F401 (fixtures)
from tests.security.test_every_route import ROLE_OF, targets, url_for
from web import i18n
from web.runtime import Runtime

LANGS = ("ru", "ja", "zh_Hans")
ATTRS = ("title", "placeholder", "aria-label", "alt")
PLACEHOLDER = re.compile(r"%\(\w+\)[0-9]*[sd]")


class Texts(HTMLParser):
    """The visible text of a page: text nodes (not scripts) and labelling attributes."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.texts: list[str] = []
        self.lang: str | None = None
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        for name, value in attrs:
            if name in ATTRS and value:
                self.texts.append(value)
            if tag == "html" and name == "lang":
                self.lang = value

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        text = " ".join(data.split())
        if text and not self._skip:
            self.texts.append(text)


def _english(language: str) -> tuple[set[str], list[tuple[str, re.Pattern[str]]]]:
    """The msgids a page in ``language`` must not show: exact texts, and patterns for
    those with placeholders (only where the words around them say something)."""
    po = Path(i18n.LOCALE_DIR) / language / "LC_MESSAGES" / "messages.po"
    exact: set[str] = set()
    patterns: list[tuple[str, re.Pattern[str]]] = []
    with po.open("rb") as f:
        catalog = read_po(f, locale=language)
    for m in catalog:
        if not m.id:
            continue
        ids = m.id if isinstance(m.id, tuple) else (m.id,)
        strings = m.string if isinstance(m.string, tuple) else (m.string,)
        for msgid in ids:
            if msgid in strings:
                continue  # the same in both languages: it cannot leak
            text = msgid.replace("&amp;", "&").replace("%%", "%")
            text = re.sub(r"<[^>]+>", "", text)
            if PLACEHOLDER.search(text):
                words = PLACEHOLDER.sub("", text)
                if len(re.findall(r"[A-Za-z]{3,}", words)) >= 2:
                    parts = [re.escape(p) for p in PLACEHOLDER.split(text)]
                    patterns.append((msgid, re.compile(".+?".join(parts))))
            else:
                exact.add(text)
    return exact, patterns


USERNAMES = frozenset({"admin", "maria", "alice", "bob", "otto"})
"""Data, not words: the admin's username is also the English label of the role."""


def leaks(html: str, language: str, data: frozenset[str] = USERNAMES) -> list[str]:
    parser = Texts()
    parser.feed(html)
    exact, patterns = _english(language)
    found = [t for t in parser.texts if t in exact and t not in data]
    for text in parser.texts:
        for msgid, pattern in patterns:
            if pattern.fullmatch(text):
                found.append(f"{text!r} (from {msgid!r})")
    return found


def lang_attr(html: str) -> str | None:
    parser = Texts()
    parser.feed(html)
    return parser.lang


@pytest.mark.slow
@pytest.mark.parametrize("language", LANGS)
async def test_every_page_of_every_role_is_in_the_language(
    language: str,
    clients: Clients,  # noqa: F811
    rt: Runtime,
    world: World,  # noqa: F811
) -> None:
    app = clients.server.app
    assert app is not None
    for person in (world.people.alice, world.people.manager, world.people.admin):
        person.language = language
        await rt.store.update_user(person)
    problems: list[str] = []
    pages = 0
    for who in ("nobody", "alice", "maria", "admin"):
        c = clients.by_name[who]
        headers = {"Accept-Language": language.replace("_", "-")} if who == "nobody" else {}
        for t in targets(app):
            if t.method != "GET" or ROLE_OF[who] not in t.decision.roles:
                continue
            url = url_for(app, rt, world, t, who)
            if url in ("/events", "/logout") or url.startswith(
                ("/static", "/api/", "/recordings/")
            ):
                continue
            resp = await c.get(url, headers=headers, allow_redirects=False)
            if resp.status != 200 or not resp.content_type.startswith("text/html"):
                resp.close()
                continue
            html = await resp.text()
            pages += 1
            if lang_attr(html) != language.replace("_", "-"):
                problems.append(f"{who} {url}: lang={lang_attr(html)!r}")
            problems += [f"{who} {url}: {leak}" for leak in leaks(html, language)]
    assert pages >= 20, f"only {pages} pages rendered"
    assert problems == [], "\n".join(problems)


def test_the_leak_check_finds_english() -> None:
    """The check itself: an English button on a Russian page is found."""
    html = '<html lang="ru"><body><button>Save changes</button><p>Сохранить</p></body></html>'
    assert leaks(html, "ru") == ["Save changes"]
    html = '<p title="Open this call">Звонок 2 мин назад</p><p>All calls with Ann →</p>'
    assert leaks(html, "ja") == [
        "Open this call",
        "'All calls with Ann →' (from 'All calls with %(name)s →')",
    ]
