"""Languages and time zones: which language a request gets, the user's own choice, the
page's ``lang`` and the formats a screen pop uses."""

from __future__ import annotations

import json
import re

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
    assert 'href="/login?lang=ja"' in html


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
    moment = 1795400400.0  # 2026-11-22 09:00 UTC
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
