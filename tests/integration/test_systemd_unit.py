"""deploy/supportbot.service passes `systemd-analyze verify` and keeps its promises: its own
user, a writable state directory and nothing else, restarted when it fails.

`verify` also checks that ExecStart's program exists; on a test machine the virtualenv is not
at /opt/supportbot, so a copy of the unit points at a stand-in program and differs in nothing
else. It prints a warning (and still exits 0) for a misspelt key: the test wants silence.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "supportbot.service"
PROGRAM = "/opt/supportbot/bin/supportbot"


def _verify(unit_text: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        if os.environ.get("CI") == "true":
            pytest.fail("systemd-analyze is missing; .ci/run installs systemd")
        pytest.skip("systemd-analyze is not installed (apt-get install systemd)")
    program = tmp_path / "supportbot"
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    assert unit_text.count(PROGRAM) == 1
    unit = tmp_path / "supportbot.service"
    unit.write_text(unit_text.replace(PROGRAM, str(program)))
    return subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)


def test_the_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    result = _verify(UNIT.read_text(), tmp_path)
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), result.stderr


def test_verify_is_not_silent_about_a_misspelt_key(tmp_path: Path) -> None:
    result = _verify(UNIT.read_text().replace("Restart=on-failure", "Restrt=on-failure"), tmp_path)
    assert "Unknown key" in result.stderr


def test_it_runs_hardened_as_its_own_user_with_a_state_directory() -> None:
    directives = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            directives.setdefault(key, value)
    assert directives["ExecStart"] == f"{PROGRAM} run"
    assert directives["Restart"] == "on-failure"
    assert directives["DynamicUser"] == "yes"
    assert directives["StateDirectory"] == "supportbot"
    assert directives["EnvironmentFile"] == "/etc/supportbot/supportbot.env"
    for key in ("NoNewPrivileges", "ProtectHome", "PrivateTmp", "PrivateDevices"):
        assert directives[key] == "yes", key
    assert directives["ProtectSystem"] == "strict"
    assert directives["KillSignal"] == "SIGTERM"
