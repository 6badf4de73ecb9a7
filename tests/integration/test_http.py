"""The bot's own HTTP endpoint: Slack's signed requests and the health check."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request

from tests.support.harness import SIGNING_SECRET, bot_env, running_bot


def signed_post(url: str, body: bytes, *, secret: str = SIGNING_SECRET, timestamp: int | None = None):
    ts = str(int(time.time()) if timestamp is None else timestamp)
    signature = "v0=" + hmac.new(secret.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    request = urllib.request.Request(
        url,
        data=body,
        headers={
            "Content-Type": "application/json",
            "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": signature,
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_signed_requests_are_served_and_forged_ones_refused(imap, slack, database_url):
    env = bot_env(slack_url=slack.base_url, imap=imap, database_url=database_url)
    body = json.dumps({"type": "url_verification", "challenge": "c-123", "token": "x"}).encode()
    with running_bot(env) as bot:
        url = f"{bot.url}/slack/events"
        status, answer = signed_post(url, body)
        assert status == 200 and b"c-123" in answer
        assert signed_post(url, body, secret="not-the-secret")[0] == 401
        assert signed_post(url, body, timestamp=int(time.time()) - 3600)[0] == 401, "replay window"


def test_health_reports_leadership_mailbox_and_outbox(imap, slack, database_url):
    env = bot_env(slack_url=slack.base_url, imap=imap, database_url=database_url)
    with running_bot(env) as bot:
        from tests.support.harness import wait_until

        wait_until(lambda: bot.watcher is not None and bot.watcher.connected.is_set(), what="IMAP")
        with urllib.request.urlopen(f"{bot.url}/healthz", timeout=5) as response:
            health = json.load(response)
    assert response.status == 200
    assert health["status"] == "ok" and health["database"] == "ok"
    assert health["leader"] is True and health["mailbox_connected"] is True
