"""Dial rules: E.164 in, what the PBX's outbound routes expect out."""

from __future__ import annotations

import pytest

from ami_bridge.dialrules import DialRuleError, DialRules


def test_us_pbx_dials_national_form_and_011_abroad() -> None:
    rules = DialRules()  # US, 011, no outside-line digit: what fixture 06 dialled
    assert rules.to_dial_string("+14155550123") == "4155550123"
    assert rules.to_dial_string("+14165550123") == "4165550123"  # Canada: NANP, no 011
    assert rules.to_dial_string("+442079460958") == "011442079460958"
    assert rules.to_dial_string("+390612345678") == "011390612345678"  # Italy keeps its 0


def test_outside_line_prefix_goes_in_front_of_outside_numbers_only() -> None:
    rules = DialRules(outside_prefix="9")
    assert rules.to_dial_string("+14155550123") == "94155550123"
    assert rules.to_dial_string("+442079460958") == "9011442079460958"
    assert rules.to_dial_string("103") == "103"  # an internal extension dials as is


def test_european_pbx_uses_trunk_prefix_at_home_and_00_abroad() -> None:
    uk = DialRules(home_region="gb", international_prefix="00")
    assert uk.to_dial_string("+442079460958") == "02079460958"
    assert uk.to_dial_string("+14155550123") == "0014155550123"
    de = DialRules(home_region="DE", international_prefix="00", outside_prefix="0")
    assert de.to_dial_string("+4930123456") == "0030123456"
    assert de.to_dial_string("+33612345678") == "00033612345678"


def test_e164_trunk_takes_plus_form() -> None:
    rules = DialRules(home_region="DE", international_prefix="+")
    assert rules.to_dial_string("+14155550123") == "+14155550123"


def test_bad_numbers_are_refused_with_a_reason() -> None:
    rules = DialRules()
    for bad in ("4155550123", "+1", "+999123", "hello", "", "1\r\nAction: Logoff"):
        with pytest.raises(DialRuleError):
            rules.to_dial_string(bad)


def test_channel_and_caller_id() -> None:
    rules = DialRules(channel_template="SIP/{ext}")
    assert rules.channel_for("103") == "SIP/103"
    with pytest.raises(DialRuleError):
        rules.channel_for("103\r\nAction: Logoff")
    assert rules.caller_id_for("4155550123") == '"Call to 4155550123" <4155550123>'
    fixed = DialRules(caller_id='"Acme Sales" <+14155550100>')
    assert fixed.caller_id_for("4155550123") == '"Acme Sales" <+14155550100>'


def test_rules_from_config_and_bad_config() -> None:
    rules = DialRules.from_config(
        {"outside_prefix": "9", "home_region": "FR", "international_prefix": "00", "caller_id": ""}
    )
    assert rules.to_dial_string("+33612345678") == "90612345678"
    assert rules.caller_id is None
    for bad in (
        {"outside_prefx": "9"},
        {"home_region": "XX"},
        {"outside_prefix": "9,"},
        {"international_prefix": ""},
        {"channel_template": "103"},
        {"caller_id": "A\nB"},
        {"extension_pattern": "("},
    ):
        with pytest.raises(DialRuleError):
            DialRules.from_config(bad)
