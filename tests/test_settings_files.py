"""The settings files: neutral defaults for any PBX, the demo's lab PBX in config/demo.toml
(read by ``run.py --demo`` and by tests that replay the lab's captures), and the demo's port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from config.settings import load_settings, pbx_profile

from .paths import ROOT

LAB_NUMBERS = ["5551000", "5551002", "5552000"]


def test_defaults_name_no_pbx_of_ours() -> None:
    settings = load_settings(env={})
    assert settings["pbx"]["trunk_endpoints"] == []
    assert settings["pbx"]["own_numbers"] == []
    assert "demo" not in settings
    profile = pbx_profile(settings)
    assert not profile.is_trunk("trunk", "from-internal")
    assert profile.own_numbers == ()


def test_the_demo_settings_are_the_lab_pbx() -> None:
    settings = load_settings(env={}, demo=True)
    assert settings["pbx"]["trunk_endpoints"] == ["trunk"]
    assert settings["pbx"]["own_numbers"] == LAB_NUMBERS
    assert pbx_profile(settings).is_trunk("trunk", "from-internal")
    captures = settings["demo"]["captures"]
    assert captures and all((ROOT / c).is_file() for c in captures)
    # the rest still comes from the defaults
    assert settings["pbx"]["trunk_contexts"] == ["from-trunk", "from-pstn"]


def test_a_config_file_and_the_environment_win_over_the_demo(tmp_path: Path) -> None:
    mine = tmp_path / "mine.toml"
    mine.write_text('[pbx]\nown_numbers = ["+14155551000"]\n')
    settings = load_settings(mine, env={"CRM__PBX__TRUNK_ENDPOINTS": "telco-.*"}, demo=True)
    assert settings["pbx"]["own_numbers"] == ["+14155551000"]
    assert settings["pbx"]["trunk_endpoints"] == ["telco-.*"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_run_py_demo_serves_on_the_port_given(tmp_path: Path) -> None:
    port = _free_port()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONUNBUFFERED": "1",
        "CRM__DATABASE__URL": f"sqlite:///{tmp_path / 'demo.db'}",
        "CRM__SERVER__KEY_FILE": str(tmp_path / "secret.key"),
        "CRM__RECORDINGS__MEDIA_DIR": str(tmp_path / "media"),
    }
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "run.py"), "--demo", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 45
        seen: list[str] = []
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            seen.append(line)
            if "Switchboard CRM on http://" in line:
                break
        assert f"Switchboard CRM on http://127.0.0.1:{port}/\n" in seen, "".join(seen)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=10) as page:
            assert page.status == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
