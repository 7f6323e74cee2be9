"""The live list's row for a call in progress, built by the browser from an update's
fields (``crm.liveRow`` in web/static/live.js), against the row the server renders on page
load (_live_row.html), in Chromium, in each of our languages and a time zone of its
own: the same cells, words, links, badges and time, for every kind of call and contact a
row can show.  If the template and the script drift apart, this fails."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from playwright.async_api import Browser

from web import i18n
from web.render import format_number, make_env

from .conftest import Site, login_page
from .test_rep_browser import watch_errors

pytestmark = pytest.mark.browser

STARTED = 1795341294.0
CONTACTS: list[dict[str, Any] | None] = [
    None,
    {"id": 7, "name": "Grace <Hopper> & Co", "url": "/contacts/7", "company": "Navy & Sons",
     "is_lead": False, "other_rep": False, "pending": False},
    {"id": 8, "name": "Lead Lou", "url": "/contacts/8", "company": "", "is_lead": True,
     "other_rep": False, "pending": False},
    {"id": None, "name": "", "url": None, "company": "", "is_lead": False, "other_rep": True,
     "pending": False},
    {"id": None, "name": "", "url": None, "company": "", "is_lead": False, "other_rep": False,
     "pending": True},
]  # fmt: skip


def cases(region: str) -> list[dict[str, Any]]:
    """Every branch of the template, as the hub's messages carry them."""
    out = []
    combos = itertools.product(
        ("ringing", "answered", "ended"),
        ("inbound", "outbound", "internal"),
        range(len(CONTACTS)),
        (True, False),  # may open the contact
        ((), ("101",), ("101", "102")),  # ringing now
        ((None, None), ("102", "Bob Rep")),  # answered by
        (None, "Carol Caller"),  # the internal caller's user
        (None, 'ACME "Sales"'),  # caller ID name
    )
    for n, combo in enumerate(combos):
        state, direction, contact, can_open, ringing, answered, user, name = combo
        if n % 5:  # a fifth of the product still takes every branch
            continue
        number = "101" if direction == "internal" else "+14155550199"
        out.append({
            "linkedid": f"live.{n}", "state": state, "direction": direction,
            "number": number, "number_display": format_number(number, region),
            "caller": "101" if direction != "inbound" else "+14155550199",
            "caller_user": user, "caller_name": name, "contact": CONTACTS[contact],
            "can_open": can_open, "ringing": list(ringing), "answered_by": answered[0],
            "answered_by_name": answered[1], "started_at": STARTED + n,
        })  # fmt: skip
    return out


# The row as the reader sees it: each element with what it does (classes, link, dial
# number, hover title) in document order, and each cell's text as laid out.
SHAPE = """(html) => {
  const tbody = document.createElement("tbody");
  if (typeof html === "string") tbody.innerHTML = html.trim();
  else tbody.append(window.crm.liveRow(html));
  const table = document.querySelector("#live-calls");
  table.append(tbody);
  const row = tbody.firstElementChild;
  const since = (n) => n.hasAttribute("data-since") ? parseFloat(n.dataset.since) : null;
  const shape = [];
  for (const node of [row, ...row.querySelectorAll("*")]) {
    shape.push([node.tagName, node.className, node.getAttribute("href"),
                node.getAttribute("data-dial"), node.getAttribute("title"),
                node.getAttribute("data-linkedid"), since(node)]);
  }
  const text = Array.from(row.cells, (c) => c.innerText.replace(/\\s+/g, " ").trim());
  tbody.remove();
  return {shape, text};
}"""


@pytest.mark.parametrize(
    ("language", "timezone"),
    [("en", "America/Los_Angeles"), ("ru", "Europe/Moscow"), ("ja", "Asia/Tokyo"),
     ("zh_Hans", "Asia/Shanghai")],
)  # fmt: skip
async def test_the_browser_builds_the_row_the_server_renders(
    browser: Browser, site: Site, language: str, timezone: str
) -> None:
    rt = site.rt
    alice = site.people.alice
    alice.language, alice.timezone = language, timezone
    await rt.store.update_user(alice)
    page = await login_page(browser, site, "alice")
    errors = watch_errors(page)
    await page.wait_for_function("() => document.body.dataset.live === '1'")
    assert (await page.get_attribute("html", "lang") or "").startswith(language[:2])
    await page.evaluate("() => { document.querySelector('.table-wrap').hidden = false; }")

    region = str(rt.settings["numbers"]["default_region"])
    env = make_env(rt.settings)
    template = env.get_template("_live_row.html")
    checked = 0
    for live in cases(region):
        with i18n.using(language, timezone, region):
            html = template.render(live=live)
        served = await page.evaluate(SHAPE, html)
        built = await page.evaluate(SHAPE, live)
        assert built == served, f"{language}: {live}"
        checked += 1
    assert checked >= 400
    # the words are the reader's: a Russian, Japanese or Chinese row is not in English
    sample = await page.evaluate(SHAPE, cases(region)[0])
    if language != "en":
        assert "ringing" not in " ".join(sample["text"]).lower()
    assert not errors, errors
