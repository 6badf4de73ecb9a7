"""The built wheel runs on its own: installed in a fresh virtualenv away from the checkout,
`supportbot db upgrade` and the sandbox find their migrations, templates and page files
inside the package, as an image, `pipx` or a plain `pip install .` will run them.

The wheel is built from a copy of what the package is made of (so the SQLite and PostgreSQL
CI runs never race in one `build/` directory), with the locked build backend
(`--no-build-isolation`); the virtualenv gets the locked run dependencies, hash-checked,
and the wheel with `--no-deps`, exactly as the Containerfile installs them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.harness import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
# What pyproject.toml builds the wheel from; nothing else of the checkout is copied.
SOURCES = ("pyproject.toml", "README.md", "bot", "handlers", "rota", "templates", "migrations")


def _pip(python: Path, *args: str, cwd: Path) -> None:
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *args],
        cwd=cwd,
        check=True,
        timeout=480,
    )


def _clean_env(**extra: str) -> dict[str, str]:
    """The environment of an operator's shell: no settings of ours, nothing pointing at
    the checkout or the test virtualenv."""
    ours = ("SLACK_", "IMAP_", "SMTP_", "SUPPORT_", "DATABASE_", "TEMPLATES_", "HTTP_", "TEST_")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(ours) and k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")
    }
    return {**env, **extra}


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The `bin/` directory of a fresh virtualenv holding the wheel and its locked deps."""
    base = tmp_path_factory.mktemp("wheel")
    source = base / "source"
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            source.mkdir(exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    build = ["wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(base / "dist"), "."]
    subprocess.run([sys.executable, "-m", "pip", *build], cwd=source, check=True, timeout=300)
    (wheel,) = (base / "dist").glob("supportbot-*.whl")
    shutil.rmtree(source)  # nothing of the sources may be left for the installed bot to lean on
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    _pip(python, "--require-hashes", "-r", str(ROOT / "requirements-run.lock"), cwd=base)
    _pip(python, "--no-deps", str(wheel), cwd=base)
    yield venv / "bin"


def test_the_package_data_is_inside_the_installed_package(installed: Path, tmp_path: Path) -> None:
    script = (
        "import json, bot.resources as r; "
        "print(json.dumps([str(r.templates_dir()), str(r.migrations_dir())]))"
    )
    result = subprocess.run(
        [str(installed / "python"), "-c", script],
        cwd=tmp_path,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    templates, migrations = (Path(p) for p in json.loads(result.stdout))
    site = installed.parent / "lib"
    assert templates.is_relative_to(site) and migrations.is_relative_to(site)
    assert (templates / "acknowledgement.en.txt").is_file()
    assert (migrations / "env.py").is_file() and (migrations / "script.py.mako").is_file()
    assert any((migrations / "versions").glob("0001_*.py"))


def test_db_upgrade_from_the_wheel(installed: Path, tmp_path: Path) -> None:
    database = tmp_path / "fresh.sqlite3"
    result = subprocess.run(
        [str(installed / "supportbot"), "db", "upgrade"],
        cwd=tmp_path,
        env=_clean_env(DATABASE_URL=f"sqlite:///{database}"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    heads = sorted(p.name.split("_", 1)[0] for p in (ROOT / "migrations" / "versions").glob("0*.py"))
    assert re.search(rf"at revision {heads[-1]}\b", result.stdout), result.stdout
    assert database.stat().st_size > 0


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.read()


def _post(url: str, body: dict[str, Any]) -> int:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=20) as response:
        return int(response.status)


def test_the_sandbox_runs_from_the_wheel(installed: Path, tmp_path: Path) -> None:
    process = subprocess.Popen(
        [str(installed / "supportbot"), "run"],
        cwd=tmp_path,
        env=_clean_env(HTTP_PORT="0", PYTHONUNBUFFERED="1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        found = re.search(r"(http://[\d.]+:\d+)/sandbox", first)
        assert found, first + (process.stderr.read() if process.poll() is not None and process.stderr else "")
        base = found.group(1)
        assert _get(base + "/healthz")[0] == 200
        status, html = _get(base + "/sandbox")
        assert status == 200 and b"sandbox.js" in html
        assert _get(base + "/sandbox/static/sandbox.js")[0] == 200

        mail = {
            "user": "U0LUCA",
            "name": "Anna Verdi",
            "address": "anna@example.org",
            "subject": "Installed from a wheel",
            "body": "Hello,\nthe wheel works.\n\nAnna",
        }
        assert _post(base + "/sandbox/api/email", mail) == 200

        def ticket() -> dict[str, Any] | None:
            state = json.loads(_get(base + "/sandbox/api/state?user=U0LUCA")[1])
            for message in state["channel"]["messages"]:
                blocks = message.get("blocks") or []
                heading = blocks[0].get("text", {}).get("text", "") if blocks else ""
                if heading.endswith(" Installed from a wheel"):
                    return dict(message)
            return None

        card = wait_until(ticket, timeout=60, interval=0.5, what="the mail's ticket")
        assert card["blocks"][0]["text"]["text"].startswith("#")
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert code == 0
