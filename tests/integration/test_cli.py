"""`supportbot run` as an operator starts it: a bad setting stops it with one line.

A child process (the CLI as installed), so it lives with the integration tests; the
validation itself is covered fast in tests/unit/test_config.py.
"""

from __future__ import annotations

import os
import subprocess
import sys

from tests.unit.test_config import BASE


def test_run_stops_with_one_line_naming_the_setting(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "IMAP_", "SMTP_", "SUPPORT_"))}
    env.update({**BASE, "IMAP_PORT": "not-a-port"})
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "run"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "IMAP_PORT" in lines[0]
    assert "imap-password-value" not in result.stderr + result.stdout
