"""Languages and time zones: which language a request gets, the user's own choice, the
page's ``lang`` and the formats a screen pop uses."""

from __future__ import annotations

import json
import re

import pytest
from aiohttp.test_utils import TestClient

from web import formatting, i18n
from web.runtime import Runtime

from .conftest import People, login

I18N_RE = re.compile(r'<script type="application/json" id="crm-i18n">(.*?)</script>', re.S)


def page_i18n(html: str) -> dict:
    match = I18N_RE.search(html)
    assert match, "no #crm-i18n blob"
    return json.loads(match.group(1))


def lang_of(html: str) -> str:
    match = re.search(r'<html lang="([^"]+)"', html)
    assert match
    return match.group(1)


async def test_accept_language_chooses_until_the_user_does(
    client: TestClient, rt: Runtime, people: People
) -> None:
    html = await (await client.get("/login", headers={"Accept-Language": "ru-RU,ru;q=0.9"})).text()
    assert lang_of(html) == "ru"
    assert "Войти" in html
    html = await (await client.get("/login", headers={"Accept-Language": "de, ja;q=0.5"})).text()
    assert lang_of(html) == "ja"
    html = await (await client.get("/login", headers={"Accept-Language": "de"})).text()
    assert lang_of(html) == "en"


async def test_login_switcher_remembers_the_language(client: TestClient, people: People) -> None:
    html = await (await client.get("/login?lang=zh_Hans")).text()
    assert lang_of(html) == "zh-Hans"
    html = await (await client.get("/login")).text()
    assert lang_of(html) == "zh-Hans"
    assert 'href="/login?lang=ja' in html


async def test_my_account_sets_language_and_time_zone(
    client: TestClient, rt: Runtime, people: People
) -> None:
    token = await login(client, "alice")
    resp = await client.post(
        "/account/preferences",
        data={"language": "ja", "timezone": "Asia/Tokyo", "_csrf": token},
    )
    assert resp.status == 200
    html = await resp.text()
    assert lang_of(html) == "ja"
    blob = page_i18n(html)
    assert blob["tz"] == "Asia/Tokyo" and blob["lang"] == "ja"
    user = await rt.store.get_user(people.alice.id or 0)
    assert user is not None and (user.language, user.timezone) == ("ja", "Asia/Tokyo")
    entries = await rt.service.list_audit(action="user.preferences")
    assert entries and entries[0].actor == "alice"
    # an unknown zone or language changes nothing
    resp = await client.post(
        "/account/preferences", data={"language": "xx", "timezone": "", "_csrf": token}
    )
    assert resp.status == 400
    resp = await client.post(
        "/account/preferences", data={"language": "", "timezone": "Mars/Olympus", "_csrf": token}
    )
    assert resp.status == 400
    user = await rt.store.get_user(people.alice.id or 0)
    assert user is not None and (user.language, user.timezone) == ("ja", "Asia/Tokyo")


def test_times_follow_the_readers_zone_and_language() -> None:
    moment = 1795338000.0  # 2026-11-22 09:00 UTC
    with i18n.using("en", "Europe/Moscow"):
        assert formatting.format_time(moment, "datetime") == "2026-11-22 12:00"
    with i18n.using("ru", "Asia/Tokyo"):
        assert formatting.format_time(moment, "datetime") == "22.11.2026 18:00"
        assert "нояб" in formatting.format_time(moment, "day_month")
    with i18n.using("ja", "UTC"):
        assert formatting.format_time(moment, "day_month") == "11月22日 09:00"


def test_russian_plural_forms() -> None:
    with i18n.using("ru"):
        words = [i18n.ngettext("%(num)d missed call", "%(num)d missed calls", n) for n in (1, 2, 5)]
    assert words == ["1 пропущенный звонок", "2 пропущенных звонка", "5 пропущенных звонков"]


def _catalog(language: str):  # type: ignore[no-untyped-def]
    from babel.messages.pofile import read_po

    path = i18n.LOCALE_DIR / language / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as f:
        return read_po(f, locale=language)


PLACEHOLDER = re.compile(r"%\((\w+)\)[0-9]*[sd]")


@pytest.mark.parametrize("language", ["ru", "ja", "zh_Hans"])
def test_every_msgid_is_translated(language: str) -> None:
    """100 %: every string the code marks (extracted afresh) has a translation, none fuzzy,
    with the same placeholders, and the right number of plural forms."""
    from babel.messages.extract import extract_from_dir
    from babel.messages.frontend import parse_mapping_cfg

    with (i18n.LOCALE_DIR.parent.parent / "babel.cfg").open() as f:
        method_map, options_map = parse_mapping_cfg(f)
    in_code = {
        (msg if isinstance(msg, str) else msg[0])
        for _file, _line, msg, _comments, _context in extract_from_dir(
            str(i18n.LOCALE_DIR.parent), method_map, options_map,
            keywords={"_": None, "gettext": None, "ngettext": (1, 2), "N_": None},
        )
    }  # fmt: skip
    catalog = _catalog(language)
    problems = []
    ids = set()
    for m in catalog:
        if not m.id:
            continue
        key = m.id if isinstance(m.id, str) else m.id[0]
        ids.add(key)
        forms = m.string if isinstance(m.string, tuple) else (m.string,)
        if m.fuzzy or not all(forms):
            problems.append(f"untranslated: {key!r}")
            continue
        if isinstance(m.id, tuple) and len(forms) != catalog.num_plurals:
            problems.append(f"plural forms: {key!r}")
        want = set(PLACEHOLDER.findall(m.id[-1] if isinstance(m.id, tuple) else m.id))
        for form in forms:
            if set(PLACEHOLDER.findall(form)) - want - {"num"}:
                problems.append(f"placeholders: {key!r} -> {form!r}")
    problems += [f"not in the catalog (scripts/i18n update): {s!r}" for s in in_code - ids]
    assert problems == []


def test_lead_names_are_written_in_the_install_language() -> None:
    """Generated text is for everyone: the install's language, not a reader's."""
    from crm.leads import lead_name
    from tests.crm.factories import inbound
    from web.runtime import lead_policy

    rec = inbound("+442079460958", caller_name="Maria Garcia", at=1_795_341_315.0)
    for language, words in (("ru", "входящий звонок, 22 нояб. 10:55"),
                            ("ja", "着信, 11月22日 10:55"),
                            ("en", "inbound call, 22 Nov 10:55")):  # fmt: skip
        settings = {"server": {"language": language}, "leads": {"display_tz": "Europe/Berlin"}}
        name = lead_name("+442079460958", rec, lead_policy(settings))
        assert name == f"Maria Garcia · +44 20 7946 0958 ({words})"


def test_the_domains_refusals_are_shown_in_the_readers_language() -> None:
    from crm.errors import InvalidInput
    from web.refusals import refusal

    exc = InvalidInput("not a phone number: 'call me'")
    with i18n.using("en"):
        assert refusal(exc) == "not a phone number: 'call me'"
    with i18n.using("ru"):
        assert refusal(exc) == "не телефонный номер: 'call me'"
    with i18n.using("ja"):
        assert refusal(InvalidInput("an empty note")) == "メモが空です"
        assert refusal(InvalidInput("something new")) == "something new"  # readable, in English
