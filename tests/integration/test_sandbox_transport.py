"""`supportbot run` without a token where the `websockets` package is not installed (a bare
`pip install`, the run lock): the sandbox says in one line that it runs over HTTP, and the
page's commands still reach the bot, as signed requests."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.support.harness import PROJECT_ROOT, wait_until

pytestmark = pytest.mark.timeout(120)

# Run before the bot is imported: `import websockets` fails as it does where it is not installed.
WITHOUT_WEBSOCKETS = """
import sys

class NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name == "websockets" or name.startswith("websockets."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NotInstalled())
from bot.cli import main
sys.exit(main(["run"]))
"""


def test_without_websockets_the_sandbox_says_so_and_runs_over_http(tmp_path: Path) -> None:
    ours = ("SLACK_", "IMAP_", "SMTP_", "SUPPORT_", "DATABASE_", "TEST_DATABASE", "SANDBOX_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(ours)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
    env.update({"HTTP_PORT": "0", "PYTHONUNBUFFERED": "1"})
    log = tmp_path / "supportbot.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", WITHOUT_WEBSOCKETS], env=env, cwd=tmp_path, stdout=out, stderr=out
        )
    try:

        def notice() -> list[str] | None:
            assert process.poll() is None, log.read_text()
            lines = log.read_text().splitlines()
            return lines if any("Socket Mode needs the websockets package" in x for x in lines) else None

        lines = wait_until(notice, timeout=60, what="the notice about websockets")
        # The first line still says where to click, and how the page reaches the bot.
        assert lines[0].startswith("supportbot sandbox: http://") and "over HTTP" in lines[0], lines[0]
        assert sum("websockets" in x for x in lines) == 1
        base = re.search(r"(http://[\d.]+:\d+/sandbox)", lines[0])
        assert base
        request = urllib.request.Request(
            base.group(1) + "/api/command",
            data=json.dumps({"user": "U0ADA", "text": "/oncall"}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=20) as response:
            answer = json.loads(response.read())
        assert answer["ok"] and "On call" in json.dumps(answer["answer"])
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
