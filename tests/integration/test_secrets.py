"""Secrets never reach a log line, an error message, an HTTP answer or Slack.

`supportbot run` is started as an operator would, with a distinctive value for every
secret setting, and driven through the paths where secrets tend to escape: a refused
IMAP login, a mail server refusing (and echoing) the SMTP login, Slack answering 500 and
`invalid_auth`, a listener raising, forged requests, a database that cannot be reached,
and settings that are malformed or pasted into the wrong place. Everything the process
printed and answered is then searched for the secrets and their obvious encodings.
"""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import fields
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from sqlalchemy.engine import make_url

from bot.config import SECRET_SETTINGS, load_settings, url_password
from bot.sandbox.imap_server import PymapServer, free_port
from bot.sandbox.slack_api import SlackStandIn
from bot.slack.render import ACTION_REPLY
from tests.support.databases import backend
from tests.support.harness import CHANNEL, PROJECT_ROOT, BotProcess, bot_env, wait_until
from tests.support.mail import customer_mail
from tests.support.slack_requests import SlackUser, signed_request

pytestmark = pytest.mark.timeout(240)

# Every value carries "SeCrEt", so a partial leak (a token's middle, half a password) shows too.
BOT_TOKEN = "xoxb-1234567890-2345678901-SeCrEtBoTtOkEn0123456789"
APP_TOKEN = "xapp-1-A0SECRETAPP-3456789012-SeCrEtApPtOkEn0123456789"
SIGNING_SECRET = "SeCrEtSiGnInG0123456789abcdef"
IMAP_PASSWORD = "SeCrEtImApPaSsWoRd-4242"
SMTP_USER = "mailer@example.com"
SMTP_PASSWORD = "SeCrEtSmTpPaSsWoRd-4343"
DB_PASSWORD = "SeCrEtDbPaSsWoRd4444"
SURVEY_SECRET = "SeCrEtSuRvEy-" + "0123456789abcdef" * 2
MARKER = "SeCrEt"
STAFF = "U0STAFF"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


# What a secret looks like on the wire: SMTP AUTH PLAIN and LOGIN, HTTP basic auth.
ENCODED = {
    "SMTP AUTH PLAIN": _b64(f"\0{SMTP_USER}\0{SMTP_PASSWORD}"),
    "SMTP AUTH LOGIN": _b64(SMTP_PASSWORD),
    "basic auth (SMTP)": _b64(f"{SMTP_USER}:{SMTP_PASSWORD}"),
    "IMAP AUTHENTICATE PLAIN": _b64(f"\0support@example.com\0{IMAP_PASSWORD}"),
    "bot token in base64": _b64(BOT_TOKEN),
}


def leaks(text: str) -> list[str]:
    found = [f"{MARKER!r} (part of a secret)"] if MARKER in text else []
    found += [name for name, value in ENCODED.items() if value in text or value.rstrip("=") in text]
    return found


def secret_env(**overrides: str) -> dict[str, str]:
    return {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SMTP_USER": SMTP_USER,
        "SMTP_PASSWORD": SMTP_PASSWORD,
        "SURVEY_SECRET": SURVEY_SECRET,
        # The most talkative level: whatever DEBUG lets through must be clean too.
        "LOG_LEVEL": "DEBUG",
        **overrides,
    }


def with_password(database_url: str) -> str:
    """The test database's URL with a password in it (PostgreSQL here trusts loopback, so any
    password connects); SQLite URLs have no password to give."""
    if backend() != "postgresql":
        return database_url
    url = make_url(database_url)
    return url.set(username=url.username or "postgres", password=DB_PASSWORD).render_as_string(
        hide_password=False
    )


def always_after_hours(timezone: str) -> str:
    """Opening hours on a weekday three days away: the whole test runs after hours."""
    today = datetime.now(ZoneInfo(timezone)).weekday()
    return f"{('mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun')[(today + 3) % 7]} 09:00-10:00"


class RefusingSmtp:
    """An SMTP server that offers AUTH, refuses every login, and (as some do) echoes what it
    was sent in the refusal: the bot must not pass that echo on."""

    def __init__(self) -> None:
        self.port = free_port()
        self.logins: list[tuple[str, str, str]] = []
        self._controller = Controller(
            object(),
            hostname="127.0.0.1",
            port=self.port,
            authenticator=self._refuse,
            auth_require_tls=False,
        )

    def _refuse(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        assert isinstance(data, LoginPassword)
        login, password = data.login.decode(), data.password.decode()
        self.logins.append((mechanism, login, password))
        echo = _b64(f"\0{login}\0{password}")
        return AuthResult(success=False, handled=False, message=f"535 5.7.8 {echo} ({password}) refused")

    def __enter__(self) -> RefusingSmtp:
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()


def http(url: str, data: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def run_cli(env: dict[str, str], cwd: Path, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    """`supportbot run` expected to stop on its own (a start-up error)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "IMAP_", "SMTP_", "SUPPORT"))}
    base.pop("TEST_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", "run"],
        env={**base, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def staff_slack() -> Iterator[SlackStandIn]:
    with SlackStandIn(channels=(CHANNEL,)) as standin:
        standin.add_user(STAFF, "ada", "Ada Staff", channels=(CHANNEL,))
        yield standin


@pytest.mark.slow
def test_a_working_bot_never_shows_a_secret_on_its_error_paths(
    staff_slack: SlackStandIn, database_url: str, tmp_path: Path
) -> None:
    slack = staff_slack
    answers: list[str] = []
    with PymapServer(tmp_path / "imap", password=IMAP_PASSWORD) as imap, RefusingSmtp() as smtp:
        env = bot_env(
            slack_url=slack.base_url,
            imap=imap,
            database_url=with_password(database_url),
            smtp_port=smtp.port,
            **secret_env(AUTO_ACK="true", BUSINESS_HOURS=always_after_hours("Europe/Rome")),
        )
        # Slack fails at start-up and on the first post (later a listener meets invalid_auth).
        slack.fail_next("auth.test", status=500)
        slack.fail_next("chat.postMessage", status=500, times=2)
        bot = BotProcess(env, tmp_path, name="bot")
        bot.start(timeout=90)
        try:
            base = f"http://127.0.0.1:{bot.port}"
            imap.append(customer_mail(1, subject="Where is my order?"))
            # The night's acknowledgement goes to SMTP, whose server refuses the login.
            wait_until(lambda: smtp.logins, timeout=60, what="an SMTP login attempt")
            assert (SMTP_USER, SMTP_PASSWORD) in {(u, p) for _, u, p in smtp.logins}
            wait_until(lambda: "refused" in bot.log(), timeout=60, what="the refused SMTP login in the log")
            ticket = wait_until(
                lambda: next((m for m in slack.messages(CHANNEL) if m.get("blocks")), None),
                timeout=60,
                what="the ticket in Slack",
            )

            # A listener that raises: Slack refuses views.open with invalid_auth.
            slack.error_next("views.open", "invalid_auth")
            ada = SlackUser(base, slack, STAFF, secret=SIGNING_SECRET)
            answer = ada.click(ticket, ACTION_REPLY)
            answers.append(answer.body.decode(errors="replace"))
            wait_until(lambda: "invalid_auth" in bot.log(), timeout=30, what="the listener's failure logged")

            # Forged and broken requests.
            form = urllib.parse.urlencode({"command": "/support", "text": "open", "user_id": STAFF}).encode()
            kind = "application/x-www-form-urlencoded"
            forged = signed_request(f"{base}/slack/events", form, content_type=kind, secret="wrong-secret")
            stale = signed_request(
                f"{base}/slack/events", form, content_type=kind, secret=SIGNING_SECRET, timestamp=1
            )
            assert forged.status == 401 and stale.status == 401
            answers += [forged.body.decode(errors="replace"), stale.body.decode(errors="replace")]
            for path, data in [
                ("/slack/events", form),
                ("/slack/events", b"\xff\xfe not utf-8"),
                ("/healthz", None),
                ("/survey/not-a-token", None),
                ("/survey/not-a-token", b"comment=hello"),
                ("/ical/not-a-token.ics", None),
                ("/nowhere", None),
            ]:
                answers.append(http(base + path, data, {"Content-Type": kind} if data else None)[1])
        finally:
            stopped = bot.terminate()

    output = bot.log()
    assert stopped == 0, output[-3000:]
    assert "auth.test" in output or "Slack answered" in output, "the start-up 500 was not seen"
    assert "invalid_auth" in output
    assert leaks(output) == [], output[-6000:]
    for body in answers:
        assert leaks(body) == [], body
    sent_to_slack = repr([call.args for call in slack.calls()])
    assert leaks(sent_to_slack) == []


@pytest.mark.slow
def test_a_refused_imap_login_is_logged_without_the_password(
    slack: SlackStandIn, database_url: str, tmp_path: Path
) -> None:
    with PymapServer(tmp_path / "imap", password="the-real-one") as imap:
        env = bot_env(
            slack_url=slack.base_url,
            imap=imap,
            database_url=with_password(database_url),
            **secret_env(IMAP_PASSWORD=IMAP_PASSWORD),
        )
        with BotProcess(env, tmp_path, name="imap") as bot:
            wait_until(lambda: "mailbox" in bot.log() and "unreachable" in bot.log(), timeout=60)
            _, body = http(f"http://127.0.0.1:{bot.port}/healthz")
            assert bot.terminate() == 0
    assert "mailbox_connected" in body and leaks(body) == []
    assert leaks(bot.log()) == [], bot.log()[-4000:]


def test_slack_refusing_the_token_stops_start_up_without_showing_it(
    slack: SlackStandIn, database_url: str, tmp_path: Path
) -> None:
    slack.error_next("auth.test", "invalid_auth")
    imap = PymapServer(tmp_path / "imap")  # never started: start-up stops before the mailbox
    env = bot_env(
        slack_url=slack.base_url, imap=imap, database_url=with_password(database_url), **secret_env()
    )
    env["IMAP_PASSWORD"] = IMAP_PASSWORD
    result = run_cli(env, tmp_path)
    assert result.returncode == 2, result.stderr
    assert "SLACK_BOT_TOKEN was refused by Slack (invalid_auth)" in result.stderr
    assert leaks(result.stdout + result.stderr) == [], result.stderr


def test_an_unreachable_database_is_named_without_its_password(tmp_path: Path) -> None:
    imap = PymapServer(tmp_path / "imap")
    url = f"postgresql://supportbot:{DB_PASSWORD}@127.0.0.1:{free_port()}/supportbot"
    env = bot_env(slack_url="http://127.0.0.1:9/", imap=imap, database_url=url, **secret_env())
    env["IMAP_PASSWORD"] = IMAP_PASSWORD
    result = run_cli(env, tmp_path)
    assert result.returncode == 2, result.stderr
    assert "DATABASE_URL" in result.stderr
    assert leaks(result.stdout + result.stderr) == [], result.stderr


@pytest.mark.parametrize("command", [["upgrade"], ["current"], ["downgrade", "0001"]])
def test_schema_commands_name_an_unreachable_database_in_one_line(command: list[str], tmp_path: Path) -> None:
    url = f"postgresql://supportbot:{DB_PASSWORD}@127.0.0.1:{free_port()}/supportbot"
    result = run_db(command, url, tmp_path)
    assert result.returncode == 2, result.stderr
    verb = "read" if command == ["current"] else command[0]
    assert result.stderr.startswith(f"supportbot: cannot {verb} the database at DATABASE_URL: "), (
        result.stderr
    )
    assert "refused" in result.stderr  # the driver's reason, not just "it failed"
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    assert leaks(result.stdout + result.stderr) == [], result.stderr


def test_schema_commands_refuse_an_unknown_revision_in_one_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'desk.sqlite3'}"
    assert run_db(["upgrade"], url, tmp_path).returncode == 0
    before = run_db(["current"], url, tmp_path).stdout
    result = run_db(["downgrade", "no-such-revision"], url, tmp_path)
    assert result.returncode == 2
    assert result.stderr == (
        "supportbot: cannot downgrade the database at DATABASE_URL: "
        "Can't locate revision identified by 'no-such-revision'\n"
    )
    assert run_db(["current"], url, tmp_path).stdout == before != ""


def run_db(command: list[str], url: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "TEST_DATABASE_URL")}
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", "db", *command],
        env={**env, "DATABASE_URL": url},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("change", "named"),
    [
        # Pasted into the wrong setting: the error names the setting, not the value.
        pytest.param({"SUPPORT_CHANNEL": BOT_TOKEN}, "SUPPORT_CHANNEL", id="token-as-channel"),
        pytest.param({"MANAGERS": SIGNING_SECRET}, "MANAGERS", id="signing-secret-as-managers"),
        pytest.param({"IMAP_PORT": SMTP_PASSWORD}, "IMAP_PORT", id="password-as-port"),
        pytest.param({"PUBLIC_URL": SURVEY_SECRET}, "PUBLIC_URL", id="survey-secret-as-url"),
        pytest.param({"TIMEZONE": DB_PASSWORD}, "TIMEZONE", id="database-password-as-timezone"),
        # A secret of the wrong shape: named, never quoted.
        pytest.param({"SLACK_APP_TOKEN": SIGNING_SECRET}, "SLACK_APP_TOKEN", id="not-an-app-token"),
        pytest.param({"SLACK_BOT_TOKEN": "xoxp-" + BOT_TOKEN}, "SLACK_BOT_TOKEN", id="not-a-bot-token"),
        pytest.param({"SURVEY_SECRET": "SeCrEt-too-short"}, "SURVEY_SECRET", id="short-survey-secret"),
        pytest.param(
            {"DATABASE_URL": f"mysql://u:{DB_PASSWORD}@db/x"}, "DATABASE_URL", id="database-url-dialect"
        ),
        # Unescaped, the @ makes the rest of the password the host name, which drivers quote.
        pytest.param(
            {"DATABASE_URL": f"postgresql://u:pass@{DB_PASSWORD}@127.0.0.1:{free_port()}/x"},
            "DATABASE_URL",
            id="database-password-with-at",
        ),
        pytest.param(
            {"DATABASE_URL": f"postgresql://u:{DB_PASSWORD}@db/x", "TIMEZONE": f"Europe/{DB_PASSWORD}"},
            "TIMEZONE",
            id="database-password-in-timezone",
        ),
    ],
)
def test_a_bad_setting_is_named_and_no_secret_is_echoed(
    change: dict[str, str], named: str, tmp_path: Path
) -> None:
    env = {
        **secret_env(),
        "IMAP_HOST": "imap.example.com",
        "IMAP_USER": "help@example.com",
        "IMAP_PASSWORD": IMAP_PASSWORD,
        "SMTP_HOST": "smtp.example.com",
        "SUPPORT_CHANNEL": CHANNEL,
        "SUPPORT_ADDRESS": "help@example.com",
        "DATABASE_URL": f"postgresql://u:{DB_PASSWORD}@db/x",
        **change,
    }
    result = run_cli(env, tmp_path, timeout=60)
    assert result.returncode == 2, result.stderr
    assert named in result.stderr, result.stderr
    assert leaks(result.stdout + result.stderr) == [], result.stderr


def test_the_log_filter_also_hides_what_a_thread_raises(tmp_path: Path) -> None:
    """An exception nobody catches (in any thread) is printed by Python, not by logging:
    it must go through the same redaction."""
    script = (
        "import threading, logging\n"
        "from bot.logs import configure_logging\n"
        f"configure_logging('INFO', secrets=[{SMTP_PASSWORD!r}])\n"
        f"def boom(): raise RuntimeError('login with ' + {SMTP_PASSWORD!r} + ' failed')\n"
        "t = threading.Thread(target=boom); t.start(); t.join()\n"
        "boom()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert result.stderr.count("RuntimeError") >= 2, result.stderr
    assert leaks(result.stdout + result.stderr) == [], result.stderr


def test_a_refused_app_token_in_socket_mode_stays_hidden(
    slack: SlackStandIn, database_url: str, tmp_path: Path
) -> None:
    slack.error_next("apps.connections.open", "invalid_auth")
    imap = PymapServer(tmp_path / "imap")  # never started: Socket Mode fails first
    env = bot_env(
        slack_url=slack.base_url,
        imap=imap,
        database_url=with_password(database_url),
        **secret_env(SLACK_APP_TOKEN=APP_TOKEN, SLACK_SIGNING_SECRET=""),
    )
    env["IMAP_PASSWORD"] = IMAP_PASSWORD
    result = run_cli(env, tmp_path)
    assert result.returncode == 2
    assert slack.calls("apps.connections.open"), "Socket Mode never tried to connect"
    # One line naming the setting, as for any bad setting, not a traceback.
    assert "configuration error: SLACK_APP_TOKEN was refused by Slack (invalid_auth)" in result.stderr
    assert "Traceback" not in result.stderr
    assert leaks(result.stdout + result.stderr) == [], result.stderr


# -- what ships: .env.example and the list of secrets ------------------------------------------

ENV_EXAMPLE = PROJECT_ROOT / ".env.example"
SECRET_NAME = re.compile(r"TOKEN|PASSWORD|SECRET")
# The only values a secret may have in the example: nothing, or a marker nobody could mistake.
PLACEHOLDER = re.compile(r"^(|<[^<>]+>|\.\.\.|…|changeme)$")


def example_settings() -> dict[str, str]:
    """Every setting .env.example mentions, set (`NAME=`) or commented out (`# NAME=`)."""
    found = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if match := re.match(r"^#?\s*([A-Z][A-Z0-9_]+)=(.*)$", line):
            found[match[1]] = re.split(r"\s+#", match[2], maxsplit=1)[0].strip()
    return found


def settings_read_by_config() -> set[str]:
    source = (PROJECT_ROOT / "bot" / "config.py").read_text()
    reads = re.findall(r'\br\.(?:raw|required|text|integer|number|boolean)\(\s*"([A-Z][A-Z0-9_]+)"', source)
    return set(reads)


def test_every_setting_the_bot_reads_is_in_env_example() -> None:
    read = settings_read_by_config()
    assert {"SLACK_BOT_TOKEN", "DATABASE_URL", "SURVEY_SECRET", "LOG_LEVEL"} <= read
    missing = read - example_settings().keys()
    assert not missing, f".env.example does not mention {sorted(missing)}"


def test_env_example_holds_no_secret_values() -> None:
    settings = example_settings()
    for name in [*SECRET_SETTINGS, *(n for n in settings if SECRET_NAME.search(n))]:
        assert name in settings, f"{name} is missing from .env.example"
        assert PLACEHOLDER.match(settings[name]), f"{name} in .env.example has a value: {settings[name]!r}"
    assert url_password(settings["DATABASE_URL"]) is None, "the example DATABASE_URL has a password"
    # Nothing shaped like a real Slack token anywhere, comments included.
    assert not re.search(r"\bx(ox[abpr]|app)-\d", ENV_EXAMPLE.read_text())


def test_every_secret_setting_is_known_as_one() -> None:
    """The redaction lists (SECRET_SETTINGS, Settings.secrets) cover every secret the config reads."""
    assert {n for n in settings_read_by_config() if SECRET_NAME.search(n)} <= set(SECRET_SETTINGS)
    settings = load_settings(
        {
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_APP_TOKEN": APP_TOKEN,
            "SUPPORT_CHANNEL": CHANNEL,
            "DATABASE_URL": f"postgresql://u:{DB_PASSWORD}@db/x",
            "IMAP_HOST": "imap.example.com",
            "IMAP_USER": "help@example.com",
            "IMAP_PASSWORD": IMAP_PASSWORD,
            "SMTP_HOST": "smtp.example.com",
            "SMTP_USER": SMTP_USER,
            "SMTP_PASSWORD": SMTP_PASSWORD,
            "SUPPORT_ADDRESS": "help@example.com",
            "SURVEY_SECRET": SURVEY_SECRET,
            "METRICS_TOKEN": "metrics-bearer-token-value",
        }
    )
    hidden = [getattr(settings, f.name) for f in fields(settings) if not f.repr and f.name != "database_url"]
    assert set(hidden) | {DB_PASSWORD, ENCODED["SMTP AUTH PLAIN"]} <= set(settings.secrets())
