"""The sandbox page's JSON endpoints, without a browser: JSON in, the state a user sees out.

The sandbox runs in this process (the same `Sandbox` that `supportbot run` starts without
a token); each action must reach the bot as Slack would send it (a signed HTTP request, or
an envelope over Socket Mode) and show up in the state the way the bot's answer made it.
Most tests run over HTTP; a representative flow and reconnection run over Socket Mode too.
"""

from __future__ import annotations

import base64
import json
import struct
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterator
from typing import Any

import pytest

from bot.config import load_settings
from bot.sandbox.runner import Sandbox
from bot.sandbox.slack_requests import NOT_ACKNOWLEDGED, find_element
from bot.sandbox.socket_mode import ACK_TIMEOUT
from bot.sandbox.team import CHANNEL
from rota import store
from tests.support.harness import wait_until

pytestmark = pytest.mark.timeout(180)

ADA, LUCA, GIULIA = "U0ADA", "U0LUCA", "U0GIULIA"


def real_png(width: int = 48, height: int = 32, rgb: tuple[int, int, int] = (200, 40, 40)) -> bytes:
    """A PNG a browser can draw: one colour, uncompressed rows deflated."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


class Page:
    """What the sandbox page's script does, from Python."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.base = sandbox.url

    def get(self, path: str) -> tuple[int, dict[str, str], bytes]:
        try:
            with urllib.request.urlopen(self.base + path, timeout=10) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read()

    def state(self, user: str = ADA) -> dict[str, Any]:
        status, _, body = self.get(f"/api/state?user={user}")
        assert status == 200, body
        return dict(json.loads(body))

    def post(
        self, action: str, body: dict[str, Any], *, content_type: str = "application/json"
    ) -> tuple[int, dict[str, Any]]:
        request = urllib.request.Request(
            f"{self.base}/api/{action}",
            data=json.dumps(body).encode(),
            headers={"Content-Type": content_type},
        )
        try:
            with urllib.request.urlopen(request, timeout=20) as response:
                return response.status, dict(json.loads(response.read()))
        except urllib.error.HTTPError as exc:
            return exc.code, dict(json.loads(exc.read() or b"{}"))

    def ticket(self, number: int, user: str = ADA) -> dict[str, Any]:
        def find() -> dict[str, Any] | None:
            for message in self.state(user)["channel"]["messages"]:
                payload = (message.get("metadata") or {}).get("event_payload") or {}
                if payload.get("number") == number:
                    return dict(message)
            return None

        return dict(wait_until(find, timeout=20, what=f"ticket #{number}"))


def running_page(tmp_path_factory: pytest.TempPathFactory, transport: str) -> Iterator[Page]:
    settings = load_settings(
        env={
            "HTTP_PORT": "0",
            "TIMEZONE": "Europe/Rome",
            "SLACK_PACE_SECONDS": "0",
            "SANDBOX_TRANSPORT": transport,
        }
    )
    sandbox = Sandbox(settings, directory=tmp_path_factory.mktemp(f"sandbox-{transport}"))
    sandbox.start()
    try:
        yield Page(sandbox)
    finally:
        sandbox.stop()


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Page]:
    yield from running_page(tmp_path_factory, "http")


@pytest.fixture(scope="module")
def socket_page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Page]:
    yield from running_page(tmp_path_factory, "socket")


@pytest.fixture(params=["http", "socket"])
def either_page(request: pytest.FixtureRequest) -> Page:
    return request.getfixturevalue("page" if request.param == "http" else "socket_page")


def test_the_first_screen_is_alive(page: Page) -> None:
    status, headers, html = page.get("")
    assert status == 200 and b"sandbox.js" in html
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert page.get("/static/sandbox.js")[0] == 200
    assert page.get("/static/../page.py")[0] == 404
    for number in (1, 2, 3):
        page.ticket(number)
    state = page.state()
    assert state["me"] == ADA
    assert {m["id"] for m in state["team"]} >= {ADA, LUCA, GIULIA}
    assert [m for m in state["team"] if m["manager"]] == [next(m for m in state["team"] if m["id"] == GIULIA)]
    # The subject that would ping everyone arrives escaped, as the bot sends it to Slack.
    third = page.ticket(3)
    assert "&lt;!channel&gt;" in third["text"] and "<!channel>" not in third["text"]


def test_unknown_users_and_non_json_are_refused(page: Page) -> None:
    assert page.get("/api/state?user=U0NOBODY")[0] == 400
    assert page.post("command", {"user": "U0NOBODY", "text": "/support help"})[0] == 400
    assert page.post("command", {"user": ADA, "text": "/support help"}, content_type="text/plain")[0] == 415
    assert (
        page.post(
            "act", {"user": ADA, "where": "message", "channel": CHANNEL, "ts": "1.2", "action_id": "x"}
        )[0]
        == 400
    )


def test_email_claim_reply_with_a_template_and_resolve(either_page: Page) -> None:
    page = either_page
    status, _ = page.post(
        "email",
        {
            "user": LUCA,
            "name": "Anna Verdi",
            "address": "anna@example.org",
            "subject": "Wrong invoice",
            "body": "Hello,\nmy invoice is wrong.\n\nAnna",
        },
    )
    assert status == 200
    ticket = page.ticket(4, LUCA)
    assert ticket["blocks"][0]["text"]["text"] == "#4 Wrong invoice"

    where = {"where": "message", "channel": CHANNEL, "ts": ticket["ts"]}
    status, answer = page.post("act", {"user": LUCA, **where, "action_id": "ticket_claim", "value": "4"})
    assert status == 200 and answer["ok"]
    wait_until(lambda: "<@U0LUCA>" in json.dumps(page.ticket(4, LUCA)["blocks"]), what="Luca's claim")

    # Someone else trying to claim it is answered only to them.
    page.post("command", {"user": ADA, "text": "/support claim 4"})
    told = wait_until(lambda: page.state(ADA)["ephemerals"], what="Ada's ephemeral")
    assert "already claimed by <@U0LUCA>" in told[-1]["text"]
    assert not page.state(LUCA)["ephemerals"]

    page.post("act", {"user": LUCA, **where, "action_id": "ticket_reply"})
    modal = wait_until(lambda: page.state(LUCA)["modal"], what="the reply modal")
    assert page.state(ADA)["modal"] is None  # the modal opened for the one who clicked
    status, _ = page.post(
        "act",
        {
            "user": LUCA,
            "where": "view",
            "view_id": modal["id"],
            "block_id": "template_pick",
            "action_id": "reply_template",
            "value": "acknowledgement.en",
            "values": {},
        },
    )
    assert status == 200
    filled = wait_until(
        lambda: (m := page.state(LUCA)["modal"]) and m["hash"] != modal["hash"] and m, what="the template"
    )
    body = next(b for b in filled["blocks"] if b["type"] == "input")
    assert "Anna" in body["element"]["initial_value"]

    # An empty message is refused next to the field, and the modal stays open.
    page.post("submit", {"user": LUCA, "view_id": filled["id"], "values": {body["block_id"]: "  "}})
    errors = wait_until(lambda: page.state(LUCA)["modal"]["errors"], what="the field error")
    assert body["block_id"] in errors

    status, answer = page.post("submit", {"user": LUCA, "view_id": filled["id"], "values": {}})
    assert status == 200 and answer["ok"]
    assert page.state(LUCA)["modal"] is None
    # Found by its text: outside business hours the outbox also holds the automatic
    # acknowledgements (#4's among them), so "the newest mail" may not be Luca's reply.
    written = body["element"]["initial_value"].strip()

    def luca_reply() -> dict[str, Any] | None:
        sent = page.state(LUCA)["outbox"]
        return next((m for m in sent if written in m["text"].replace("\r\n", "\n")), None)

    reply = wait_until(luca_reply, timeout=20, what="the reply email")
    assert "[#4]" in reply["subject"] and "anna@example.org" in reply["to"]
    assert "Anna" in reply["text"]
    assert dict(reply["headers"])["In-Reply-To"]

    # The customer answers the reply: it threads onto the same ticket. Wait for that very
    # message: counting replies is not enough, as the thread may already hold two (the
    # acknowledgement and Luca's reply), and a resolve that overtook the customer's mail
    # would be undone by it (a customer writing reopens a resolved ticket).
    page.post(
        "email",
        {"user": LUCA, "address": "anna@example.org", "body": "Thanks!", "reply_to": reply["number"]},
    )
    wait_until(lambda: "Thanks!" in json.dumps(page.ticket(4, LUCA)["replies"]), what="the customer's answer")

    page.post("act", {"user": LUCA, **where, "action_id": "ticket_resolve", "value": "4"})
    wait_until(lambda: "Resolved" in json.dumps(page.ticket(4, LUCA)["blocks"]), what="the resolution")


def test_over_socket_mode_the_page_talks_to_the_bot_only_through_the_socket(socket_page: Page) -> None:
    sandbox = socket_page.sandbox
    assert sandbox.socket_mode is not None and sandbox.settings.socket_mode
    assert socket_page.state(ADA)["transport"] == {"kind": "socket", "connections": 1}
    # The bot serves no Slack endpoint in Socket Mode, so nothing the page does can go by HTTP.
    request = urllib.request.Request(f"{sandbox.bot_url}/slack/events", data=b"{}", method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 404

    acked = len(sandbox.socket_mode.acks())
    status, answer = socket_page.post("command", {"user": ADA, "text": "/oncall"})
    assert status == 200 and answer["ok"] and "On call" in json.dumps(answer["answer"])
    assert len(sandbox.socket_mode.acks()) == acked + 1  # the command went as an envelope, acked

    # A command the bot never acknowledges (no listener for it) shows what Slack shows then.
    sandbox.socket_mode.ack_timeout = 1.0
    try:
        status, answer = socket_page.post("command", {"user": ADA, "text": "/nosuchcommand"})
    finally:
        sandbox.socket_mode.ack_timeout = ACK_TIMEOUT
    assert status == 200 and not answer["ok"] and answer["status"] == NOT_ACKNOWLEDGED
    assert "operation_timeout" in socket_page.state(ADA)["ephemerals"][-1]["text"]


def test_the_sandbox_reconnects_after_a_refresh_and_a_dropped_socket(socket_page: Page) -> None:
    socket = socket_page.sandbox.socket_mode
    assert socket is not None
    opened = socket.connections
    # Slack recycles the connection: `warning`, `refresh_requested`; the bot opens a new one.
    socket.refresh()
    socket.wait_connected(opened + 1)
    status, answer = socket_page.post("command", {"user": ADA, "text": "/oncall"})
    assert status == 200 and "On call" in json.dumps(answer["answer"])

    # A socket cut without a closing handshake: the bot's pings notice, and it comes back.
    socket.drop()
    socket.wait_connected(opened + 2, timeout=30)
    status, answer = socket_page.post("command", {"user": GIULIA, "text": "/oncall"})
    assert status == 200 and "On call" in json.dumps(answer["answer"])
    assert socket_page.state(GIULIA)["transport"] == {"kind": "socket", "connections": opened + 2}
    assert len(socket_page.sandbox.slack.calls("apps.connections.open")) == opened + 2


def test_commands_notes_home_and_the_clock(page: Page) -> None:
    status, answer = page.post("command", {"user": GIULIA, "text": "/support help"})
    assert status == 200 and answer["ok"]
    assert any("open" in e["text"] for e in page.state(GIULIA)["ephemerals"])

    # An unknown command is answered the way Slack answers one no app handles.
    page.post("command", {"user": GIULIA, "text": "/nosuchcommand"})
    assert "dispatch_failed" in page.state(GIULIA)["ephemerals"][-1]["text"]

    first = page.ticket(1, GIULIA)
    page.post("write", {"user": GIULIA, "text": "I'll call her back.", "thread_ts": first["ts"]})
    assert any(r["text"] == "I'll call her back." for r in page.ticket(1, GIULIA)["replies"])

    page.post("home", {"user": GIULIA})
    home = wait_until(lambda: page.state(GIULIA)["home"], what="App Home")
    assert home["type"] == "home"

    status, answer = page.post("clock", {"user": GIULIA, "to": "tonight"})
    assert status == 200 and answer["clock"]["local"].endswith("21:00")
    assert not answer["clock"]["business_open"]
    status, answer = page.post("clock", {"user": GIULIA, "to": "now"})
    assert status == 200 and not answer["clock"]["shifted"]
    assert page.post("clock", {"user": GIULIA, "to": "yesterday"})[0] == 400


def test_the_stand_in_shows_modals_and_responses_to_the_user_who_acted() -> None:
    """Slack's own bookkeeping the page relies on: a trigger_id ties a modal to the person
    who clicked, and what an app posts to a response_url reaches that person."""
    from slack_sdk import WebClient

    from bot.sandbox.slack_api import SlackStandIn

    with SlackStandIn(channels=(CHANNEL,)) as slack:
        client = WebClient(token="xoxb-test", base_url=slack.base_url)
        field = {
            "type": "input",
            "block_id": "b",
            "label": {"type": "plain_text", "text": "Name"},
            "element": {"type": "plain_text_input", "action_id": "v"},
        }
        view = {
            "type": "modal",
            "title": {"type": "plain_text", "text": "Hi"},
            "submit": {"type": "plain_text", "text": "Save"},
            "blocks": [field],
        }
        opened = client.views_open(trigger_id=slack.issue_trigger(ADA), view=view)["view"]
        pushed = client.views_push(trigger_id=slack.issue_trigger(ADA), view=view)["view"]
        assert slack.open_modal(ADA)["id"] == pushed["id"] and slack.open_modal(LUCA) is None
        slack.answer_submission(ADA, pushed["id"], {"response_action": "errors", "errors": {"b": "No."}})
        assert slack.open_modal(ADA)["errors"] == {"b": "No."}
        # Slack refuses errors beside anything but an input block: none are shown.
        slack.answer_submission(ADA, pushed["id"], {"response_action": "errors", "errors": {"x": "No."}})
        assert slack.open_modal(ADA)["errors"] == {}
        slack.answer_submission(ADA, pushed["id"], {})
        assert slack.open_modal(ADA)["id"] == opened["id"]
        slack.answer_submission(ADA, opened["id"], {"response_action": "clear"})
        assert slack.open_modal(ADA) is None

        def respond(body: dict[str, Any]) -> int:
            request = urllib.request.Request(
                slack.issue_response_url(LUCA, CHANNEL),
                data=json.dumps(body).encode(),
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status

        assert respond({"text": "Only for Luca"}) == 200
        assert [e["text"] for e in slack.ephemerals(LUCA)] == ["Only for Luca"]
        assert respond({"text": "For everyone", "response_type": "in_channel"}) == 200
        assert [m["text"] for m in slack.messages(CHANNEL)] == ["For everyone"]


def test_the_rota_is_seeded_and_a_duty_can_be_offered(page: Page) -> None:
    page.post("command", {"user": ADA, "text": "/oncall"})
    shown = json.dumps(page.state(ADA)["ephemerals"][-1])
    assert any(f"<@{member}>" in shown for member in (ADA, LUCA, GIULIA))
    page.post("command", {"user": ADA, "text": "/oncall me"})
    mine = json.dumps(page.state(ADA)["ephemerals"][-1])
    assert "Offer to a colleague" in mine, "Ada has duties in the seeded rota"


def test_a_duty_offered_from_the_page_changes_hands(page: Page) -> None:
    from bot.slack.oncall import ACTION_ACCEPT, ACTION_OFFER, SWAP_TO_BLOCK

    page.post("command", {"user": ADA, "text": "/oncall me"})
    mine = page.state(ADA)["ephemerals"][-1]
    offer = find_element(mine["blocks"], ACTION_OFFER)  # the first of Ada's duties
    status, answer = page.post(
        "act",
        {
            "user": ADA,
            "where": "ephemeral",
            "channel": mine["channel"],
            "ts": mine["ts"],
            "action_id": ACTION_OFFER,
            "value": offer["value"],
        },
    )
    assert status == 200 and answer["ok"], answer
    modal = wait_until(lambda: page.state(ADA)["modal"], what="the swap modal")
    status, answer = page.post(
        "submit", {"user": ADA, "view_id": modal["id"], "values": {SWAP_TO_BLOCK: LUCA}}
    )
    assert status == 200 and answer["ok"], answer

    def luca_offer() -> dict[str, Any] | None:
        for message in page.state(LUCA)["dms"]:
            if ACTION_ACCEPT in json.dumps(message.get("blocks") or []):
                return dict(message)
        return None

    dm = wait_until(luca_offer, timeout=20, what="the offer in Luca's DMs")
    accept = find_element(dm["blocks"], ACTION_ACCEPT)
    channel = page.sandbox.slack.dm_channels[LUCA]
    status, answer = page.post(
        "act",
        {
            "user": LUCA,
            "where": "message",
            "channel": channel,
            "ts": dm["ts"],
            "action_id": ACTION_ACCEPT,
            "value": accept["value"],
        },
    )
    assert status == 200 and answer["ok"], answer
    wait_until(
        lambda: any(
            f"<@{LUCA}> now holds your on-call duty" in m.get("text", "") for m in page.state(ADA)["dms"]
        ),
        timeout=20,
        what="Ada hears that Luca took the duty",
    )
    assert page.sandbox.bot is not None
    with page.sandbox.bot.factory() as session:
        offered = store.duty(session, int(offer["value"]))
        assert offered is not None
        # A duty under way is split where it changed hands: Ada keeps what she held, the rest
        # is a new duty of Luca's; a future duty simply changes holder.
        rest = store.duty_at(session, offered.end if offered.user_id == ADA else offered.start)
    assert rest is not None and rest.user_id == LUCA


def _file(name: str, data: bytes, content_type: str = "") -> dict[str, str]:
    return {"name": name, "type": content_type, "data": base64.b64encode(data).decode()}


def test_an_emailed_attachment_reaches_the_thread_and_downloads_safely(page: Page) -> None:
    picture = real_png()
    # HTML that calls itself a PNG: it must be served as bytes to save, never as a page.
    disguised = b"<html><script>alert(1)</script></html>"
    status, answer = page.post(
        "email",
        {
            "user": ADA,
            "address": "piet@example.org",
            "subject": "Screenshot of the broken export",
            "body": "See the attached files.",
            "attachments": [
                _file("screen.png", picture, "image/png"),
                _file("<img src=x onerror=alert(1)>.png", disguised, "image/png"),
                _file("notes.txt", b"line one\n", ""),
            ],
        },
    )
    assert status == 200 and answer["ok"], answer

    def thread_files() -> list[dict[str, Any]] | None:
        for message in page.state(ADA)["channel"]["messages"]:
            if "Screenshot of the broken export" in json.dumps(message.get("blocks") or []):
                shared = [f for reply in message["replies"] for f in reply.get("files") or []]
                return shared if len(shared) == 3 else None
        return None

    files = {f["size"]: f for f in wait_until(thread_files, timeout=30, what="three files in the thread")}
    shown, fake, text = files[len(picture)], files[len(disguised)], files[len(b"line one\n")]
    assert shown["name"] == "screen.png" and shown["preview"] == "image/png" and shown["pretty_type"] == "PNG"
    assert shown["preview_size"] == [48, 32]
    # The bot made the name safe for Slack; the page is told it is no picture, whatever its name.
    assert "onerror=alert(1)" in fake["name"] and "<" not in fake["name"]
    assert fake["preview"] is None and fake["pretty_type"] == "PNG"
    assert text["preview"] is None and text["pretty_type"] == "TXT" and text["size_label"] == "9 B"

    status, headers, body = page.get(shown["url"].removeprefix("/sandbox"))
    assert status == 200 and body == picture
    assert headers["Content-Type"] == "image/png"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Content-Disposition"].startswith("inline;")

    status, headers, body = page.get(fake["url"].removeprefix("/sandbox"))
    assert status == 200 and body == disguised
    assert headers["Content-Type"] == "application/octet-stream"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Content-Disposition"].startswith("attachment;")
    assert "sandbox" in headers["Content-Security-Policy"]

    status, headers, body = page.get(text["url"].removeprefix("/sandbox"))
    assert status == 200 and body == b"line one\n"
    assert headers["Content-Type"] == "application/octet-stream"
    assert 'attachment; filename="notes.txt"' in headers["Content-Disposition"]

    assert page.get("/files/F9999999")[0] == 404
    assert page.get("/files/")[0] == 404


def test_the_email_form_refuses_bad_or_oversized_files(page: Page) -> None:
    email = {"user": ADA, "address": "piet@example.org", "subject": "Too much"}
    # Just over the cap in all, though each file alone is under it.
    too_big = [_file("a.bin", b"\0" * (6 * 1024 * 1024)), _file("b.bin", b"\0" * (4 * 1024 * 1024 + 1024))]
    status, answer = page.post("email", {**email, "attachments": too_big})
    assert status == 400 and "10 MB" in answer["error"]
    status, answer = page.post("email", {**email, "attachments": [{"name": "x", "data": "not base64!"}]})
    assert status == 400 and "base64" in answer["error"]
    status, answer = page.post("email", {**email, "attachments": "x"})
    assert status == 400
    # More than a page's worth of base64 in one request is refused before it is read.
    request = urllib.request.Request(
        f"{page.base}/api/email",
        data=b"{" + b" " * (15 * 1024 * 1024) + b"}",
        headers={"Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=20)
    assert refused.value.code == 413
