"""The sandbox in a real browser: `supportbot run` without a token, as a newcomer starts it,
driven through its page in headless Chromium (Debian's, never a downloaded build).

Send a customer email from the page, see the ticket, claim it, reply with a template,
see the email the bot sent, resolve the ticket. Attach files to a customer email and see
them in the ticket's thread: the picture drawn, a hostile name shown as text.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_sandbox_api import real_png
from tests.support.harness import PROJECT_ROOT, wait_until

pytestmark = pytest.mark.timeout(240)

CHROMIUM = "/usr/bin/chromium"
FIRST_LINE = re.compile(r"^supportbot sandbox: (http://127\.0\.0\.1:\d+/sandbox) .*data in (\S+?),")


def _browser_or_skip() -> None:
    missing = []
    if not Path(CHROMIUM).exists():
        missing.append("Debian's chromium (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("Playwright's Python package (pip install -e '.[test]')")
    if not missing:
        return
    if os.environ.get("CI") == "true":
        # CI installs both (.ci/run); a silent skip there would hide that this never ran.
        pytest.fail(f"CI=true but {' and '.join(missing)} is missing")
    pytest.skip(f"needs {' and '.join(missing)}")


class SandboxProcess:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.log_path = workdir / "supportbot.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> str:
        # As a newcomer's shell would have it: no Slack, mailbox or database settings at all.
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("SLACK_", "IMAP_", "SMTP_", "SUPPORT_", "DATABASE_", "TEST_DATABASE"))
        }
        # This tree's code, even where the virtualenv's editable install points elsewhere.
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
        env.update({"HTTP_PORT": "0", "PYTHONUNBUFFERED": "1", "TIMEZONE": "Europe/Rome"})
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bot.cli", "run"],
                env=env,
                cwd=self.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

        def first_line() -> str | None:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"supportbot exited with {self.proc.returncode}: {self.log()}")
            lines = self.log().splitlines()
            return lines[0] if lines else None

        line = wait_until(first_line, timeout=60, what="the sandbox's first line")
        match = FIRST_LINE.match(line)
        assert match, f"the first line should say where the sandbox is: {line!r}"
        self.data = Path(match.group(2))
        return match.group(1)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def interrupt(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[tuple[SandboxProcess, str]]:
    _browser_or_skip()
    process = SandboxProcess(tmp_path)
    try:
        url = process.start()
        yield process, url
    finally:
        process.kill()
        if getattr(process, "data", None) is not None:
            shutil.rmtree(process.data.parent, ignore_errors=True)


def test_a_ticket_from_email_to_resolved_in_the_browser(
    sandbox: tuple[SandboxProcess, str], tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    process, url = sandbox
    errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 960})
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.set_default_timeout(20_000)
            page.goto(url)
            page.wait_for_selector("body[data-ready=true]")
            page.select_option("#act-as", "U0LUCA")

            # The seeded tickets make the first screen alive; the escaped subject shows as text.
            expect(page.locator('.msg[data-ticket="3"]')).to_contain_text("<!channel> the export button")

            # A customer writes in.
            form = page.locator("#email-form")
            form.locator("[name=name]").fill("Anna Verdi")
            form.locator("[name=address]").fill("anna@example.org")
            form.locator("[name=subject]").fill("Printer <b>on fire</b>")
            form.locator("[name=body]").fill("Hello,\nour printer is on fire.\n\nAnna")
            form.locator("button[type=submit]").click()
            ticket = page.locator('.msg[data-ticket="4"]')
            expect(ticket).to_contain_text("#4 Printer <b>on fire</b>")
            expect(ticket).to_contain_text("Anna Verdi <anna@example.org>")

            # Claim it.
            ticket.locator('button[data-action="ticket_claim"]').click()
            expect(ticket).to_contain_text("Claimed by @Luca Bianchi")
            expect(ticket.locator('button[data-action="ticket_claim"]')).to_have_count(0)

            # Reply with a template, in the modal the bot opened for Luca.
            ticket.locator('button[data-action="ticket_reply"]').click()
            modal = page.locator("#modal")
            expect(modal).to_be_visible()
            expect(modal).to_contain_text("Reply to #4")
            modal.locator('select[data-action="reply_template"]').select_option("acknowledgement.en")
            expect(modal.locator("textarea")).to_have_value(re.compile("Anna"))
            modal.locator('[data-test="modal-submit"]').click()
            expect(page.locator("#modal-backdrop")).to_be_hidden()

            # The email is in the outbox list, as the SMTP server received it.
            page.locator('.tab[data-tab="sent"]').click()
            sent = page.locator(".mail").first
            expect(sent).to_contain_text("[#4]", timeout=30_000)
            expect(sent).to_contain_text("anna@example.org")
            expect(sent.locator(".mail-text")).to_contain_text("Anna")

            # Resolve it.
            ticket.locator('button[data-action="ticket_resolve"]').click()
            expect(ticket).to_contain_text("Resolved")
            expect(ticket.locator('button[data-action="ticket_resolve"]')).to_have_count(0)

            # The thread holds the reply the bot posted once SMTP accepted it.
            ticket.locator(".replies-link").click()
            expect(page.locator("#thread-feed")).to_contain_text("replied")

            shot = tmp_path / "sandbox.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
        finally:
            browser.close()
    assert not errors, errors
    data = process.data
    assert data.exists()
    assert process.interrupt() == 0, process.log()
    assert not data.parent.exists(), "the sandbox's data should be gone after Ctrl-C"


def _standin_url(process: SandboxProcess) -> str:
    found = wait_until(
        lambda: re.search(r"Slack stand-in (http://127\.0\.0\.1:\d+/api/)", process.log()),
        timeout=10,
        what="the Slack stand-in's address in the log",
    )
    return found.group(1)


def test_an_attached_picture_shows_in_the_thread(sandbox: tuple[SandboxProcess, str]) -> None:
    from playwright.sync_api import expect, sync_playwright
    from slack_sdk import WebClient

    from bot.sandbox.team import CHANNEL

    process, url = sandbox
    errors: list[str] = []
    hostile = "<img src=x onerror=alert(1)>.png"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 960})
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("dialog", lambda dialog: errors.append(f"dialog: {dialog.message}"))
            page.set_default_timeout(20_000)
            page.goto(url)
            page.wait_for_selector("body[data-ready=true]")
            expect(page.locator('.msg[data-ticket="3"]')).to_be_visible()

            # The clock moved to the evening, as a newcomer trying out-of-hours would: the
            # upload is still due in real seconds.
            page.locator('[data-jump="tonight"]').click()
            expect(page.locator("#clock")).to_contain_text("21:00")

            form = page.locator("#email-form")
            form.locator("[name=subject]").fill("Screenshot attached")
            form.locator("[name=body]").fill("The export page looks like this.")
            form.locator("[data-test=email-files]").set_input_files(
                [
                    {"name": "screen.png", "mimeType": "image/png", "buffer": real_png()},
                    {"name": hostile, "mimeType": "image/png", "buffer": b"<script>alert(1)</script>"},
                    {"name": "<!channel>", "mimeType": "text/plain", "buffer": b"hello"},
                ]
            )
            form.locator("button[type=submit]").click()
            ticket = page.locator('#feed .msg[data-ticket="4"]')
            expect(ticket).to_contain_text("#4 Screenshot attached")
            # The file input is emptied once the mail is in the mailbox.
            expect(form.locator("[data-test=email-files]")).to_have_value("")

            ticket.locator(".replies-link").click()
            thread = page.locator("#thread-feed")
            files = thread.locator(".file")
            expect(files).to_have_count(3, timeout=30_000)
            picture = thread.locator(".file-preview img")
            expect(picture).to_have_count(1)
            expect(picture).to_have_attribute("alt", "screen.png")
            wait_until(
                lambda: picture.evaluate("img => img.complete && img.naturalWidth") == 48,
                timeout=10,
                what="the picture drawn",
            )
            screen = files.filter(has=page.locator(".file-preview img"))
            expect(screen.locator(".file-name")).to_have_text("screen.png")
            expect(screen.locator(".file-info")).to_contain_text("PNG")
            expect(screen.locator("a[download]")).to_have_attribute("download", "screen.png")

            # Hostile names are text: the bot made them safe for Slack, and the page draws
            # whatever name it gets as text, never as markup.
            expect(thread).to_contain_text("onerror=alert(1)")
            expect(thread).to_contain_text("!channel")
            assert page.locator("img[src=x]").count() == 0
            expect(thread.locator(".mention.broadcast")).to_have_count(0)
            # Bytes that only claim to be a PNG are a download, not a picture.
            fake = files.filter(has_text="onerror")
            expect(fake.locator("img")).to_have_count(0)
            expect(fake.locator("a[download]")).to_have_count(1)

            # Names exactly as hostile as a person sharing a file in Slack may choose, through
            # the real Slack client to the stand-in the page draws: still text.
            slack = WebClient(token="xoxb-sandbox", base_url=_standin_url(process))
            thread_ts = ticket.get_attribute("data-ts")
            for name, data in ((hostile, real_png(20, 10)), ("<!channel>", b"hi all")):
                slack.files_upload_v2(channel=CHANNEL, thread_ts=thread_ts, filename=name, content=data)
            expect(files).to_have_count(5, timeout=10_000)
            raw = files.filter(has=page.locator(".file-name", has_text=re.compile(r"^<img src=x")))
            expect(raw.locator(".file-name")).to_have_text(hostile)
            expect(raw.locator("img")).to_have_attribute("alt", hostile)
            named = files.filter(has=page.locator(".file-name", has_text=re.compile(r"^<!channel>$")))
            expect(named.locator(".file-info")).to_have_text("6 B · Binary")
            assert page.locator("img[src=x]").count() == 0
            expect(thread.locator(".mention.broadcast")).to_have_count(0)
        finally:
            browser.close()
    assert not errors, errors
    assert process.interrupt() == 0, process.log()
