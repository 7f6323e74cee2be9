"""The admin's side of a real PBX: "Test connection" with the right secret, a wrong
secret and a wrong port; and a CRM whose AMI user may not originate (the rig's read-only
``audit`` user): the click fails with a message that says so, and the admin page too."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest

from .conftest import Live
from .rig import Crm, Http, free_port, wait_for


def probe(admin: Http, **form: str) -> str:
    admin.refresh_csrf("/admin")
    fields = {"host": "127.0.0.1", "port": "5038", "username": "crm", "secret": "crmsecret",
              "_csrf": admin.csrf, **form}  # fmt: skip
    r = admin.post("/admin/pbx/test", form=fields)
    assert r.status == 200, r.text[:300]
    found = re.search(r'id="probe-result">(.*?)</p>', r.text, re.S)
    assert found, "no test result on the page"
    return html.unescape(" ".join(found.group(1).split()))


def test_test_connection_with_the_right_secret(live: Live) -> None:
    said = probe(live.crm.browser("ada"))
    assert said == "✔ Connected to Asterisk at 127.0.0.1:5038 as crm", said


def test_test_connection_with_a_wrong_secret(live: Live) -> None:
    said = probe(live.crm.browser("ada"), secret="not-the-secret")
    assert said == "✘ Login refused: wrong user or secret", said


def test_test_connection_with_a_wrong_port(live: Live) -> None:
    port = str(free_port())  # nothing listens there
    said = probe(live.crm.browser("ada"), port=port)
    assert said == f"✘ No answer from 127.0.0.1:{port} (connection refused)", said


def test_test_connection_with_a_user_who_may_not_originate(live: Live) -> None:
    said = probe(live.crm.browser("ada"), username="audit", secret="auditsecret")
    assert said.startswith("✘ Logged in to 127.0.0.1:5038 as audit, but"), said
    assert "originate" in said, said


@pytest.fixture(scope="module")
def readonly_crm(live: Live, tmp_path_factory: pytest.TempPathFactory) -> Crm:
    """A second CRM on the same PBX, connected as the read-only ``audit`` user."""
    workdir: Path = tmp_path_factory.mktemp("crm-audit")
    crm = Crm(workdir, live.rig.recordings, live.obs.hook_url, ami_user="audit",
              ami_secret="auditsecret")  # fmt: skip
    crm.setup_users()
    crm.start()
    yield crm
    crm.stop()


def test_no_originate_permission_fails_the_click_and_tells_the_admin(
    live: Live, readonly_crm: Crm
) -> None:
    alice = readonly_crm.browser("alice")
    r = alice.post("/dial", json_body={"number": "4155550181"},
                   headers={"Accept": "application/json"})  # fmt: skip
    assert r.status == 202, r.text
    click = r.json()
    if click["state"] != "failed":  # the PBX's refusal may come a moment after the answer;
        # a second click within seconds is a double click: it answers the first one's state
        click = wait_for(lambda: (c := alice.post(
            "/dial", json_body={"number": "4155550181"}, headers={"Accept": "application/json"}
        ).json()) and c["state"] == "failed" and c, 4, "the click to fail")  # fmt: skip
    assert "originate" in click["reason"] and "permission" in click["reason"], click
    assert live.trunk_dials("4155550181") == 0
    page = readonly_crm.browser("ada").get("/admin").text
    warning = re.search(r'id="originate-refused"[^>]*>(.*?)</p>', page, re.S)
    assert warning, "the admin page does not say that click-to-call is refused"
    text = html.unescape(" ".join(warning.group(1).split()))
    assert "audit" in text and "originate" in text, text
