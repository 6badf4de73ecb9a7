"""A local stand-in for Twilio's REST API (2010-04-01 Calls and Messages) that the real
`twilio` client talks to, and that plays Twilio's part towards the bot's webhooks.

As Twilio documents it: form-encoded POSTs to /2010-04-01/Accounts/{AccountSid}/Calls.json
and Messages.json answered 201 with the resource as JSON; GET of the same path lists
(filtered by To and From, newest first, in Twilio's page envelope) and GET of
{Sid}.json fetches; HTTP basic auth with the account SID and auth token, or an API key
SID and secret, else 401 with Twilio's error body (code 20003). The list answers carry
what Twilio's do (no status-callback URL).

Towards the bot it sends what Twilio sends: form posts signed with `X-Twilio-Signature`
(the library's RequestValidator.compute_signature over the URL and fields), to the call's
Url, the Gather's action and the StatusCallback; inbound SMS to a given URL. Tests drive a
call (`answer`, `no_answer`), and can forge, replay or stall (`stall_creates`: Twilio has
accepted the call and the bot has not heard back yet).
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import secrets
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse
from xml.etree import ElementTree

from twilio.request_validator import RequestValidator

ACCOUNT_SID = "AC" + "0" * 31 + "1"
AUTH_TOKEN = "twilio-stand-in-auth-token-0123456789"
FROM_NUMBER = "+390212345678"

_PATH = re.compile(
    r"^/2010-04-01/Accounts/(AC[0-9a-fA-F]{32})/(Calls|Messages)(?:/((?:CA|SM)[0-9a-f]{32}))?\.json$"
)


@dataclass
class Resource:
    sid: str
    kind: str  # Calls | Messages
    params: dict[str, list[str]]
    status: str
    created: datetime
    events: list[str] = field(default_factory=list)

    def get(self, name: str) -> str | None:
        values = self.params.get(name)
        return values[0] if values else None

    def as_json(self, account: str) -> dict[str, Any]:
        common = {
            "sid": self.sid,
            "account_sid": account,
            "to": self.get("To"),
            "from": self.get("From"),
            "status": self.status,
            "date_created": format_datetime(self.created),
            "date_updated": format_datetime(self.created),
            "api_version": "2010-04-01",
            "uri": f"/2010-04-01/Accounts/{account}/{self.kind}/{self.sid}.json",
        }
        if self.kind == "Calls":
            return {
                **common,
                "direction": "outbound-api",
                "start_time": None,
                "end_time": None,
                "duration": None,
            }
        return {**common, "body": self.get("Body"), "direction": "outbound-api", "num_segments": "1"}


class TwilioStandIn:
    def __init__(self, account_sid: str = ACCOUNT_SID, auth_token: str = AUTH_TOKEN) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.api_keys: dict[str, str] = {}
        self.validator = RequestValidator(auth_token)
        self.resources: dict[str, Resource] = {}
        self.lock = threading.Lock()
        self.created = threading.Condition(self.lock)
        # Faults: answers to give to the next creates, (status, Retry-After or None).
        self.refusals: list[tuple[int, str | None]] = []
        self.stall_creates = threading.Event()  # set: a create is recorded, then the answer waits
        self.release = threading.Event()
        self.requests: list[tuple[str, str]] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def env(self) -> dict[str, str]:
        """The bot's settings for this stand-in."""
        return {
            "TWILIO_ACCOUNT_SID": self.account_sid,
            "TWILIO_AUTH_TOKEN": self.auth_token,
            "TWILIO_FROM": FROM_NUMBER,
            "TWILIO_API_URL": self.url,
        }

    def __enter__(self) -> TwilioStandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    # -- what the bot asked for ------------------------------------------------------

    def calls(self, to: str | None = None) -> list[Resource]:
        with self.lock:
            return [
                r for r in self.resources.values() if r.kind == "Calls" and (to is None or r.get("To") == to)
            ]

    def messages(self, to: str | None = None) -> list[Resource]:
        with self.lock:
            return [
                r
                for r in self.resources.values()
                if r.kind == "Messages" and (to is None or r.get("To") == to)
            ]

    # -- playing Twilio towards the bot ------------------------------------------------

    def sign(self, url: str, params: dict[str, str]) -> str:
        return str(self.validator.compute_signature(url, params))

    def post(self, url: str, params: dict[str, str], signature: str | None = None) -> tuple[int, str]:
        """A webhook as Twilio sends it; `signature` overrides the right one (forgeries)."""
        body = urlencode(params).encode()
        request = urllib.request.Request(url, data=body, method="POST")
        request.add_header("Content-Type", "application/x-www-form-urlencoded")
        request.add_header("X-Twilio-Signature", self.sign(url, params) if signature is None else signature)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def status(self, call: Resource, status: str) -> tuple[int, str] | None:
        call.status = status
        callback = call.get("StatusCallback")
        if callback is None:
            return None
        sid_name, status_name = (
            ("CallSid", "CallStatus") if call.kind == "Calls" else ("MessageSid", "MessageStatus")
        )
        params = {
            sid_name: call.sid,
            status_name: status,
            "AccountSid": self.account_sid,
            "From": call.get("From") or "",
            "To": call.get("To") or "",
        }
        return self.post(callback, params)

    def _status_quietly(self, call: Resource, status: str) -> None:
        # From a thread of its own: the bot may be gone by then (the test over), as Twilio
        # would find an unreachable webhook.
        with contextlib.suppress(OSError):
            self.status(call, status)

    def answer(self, call: Resource, digits: str | None) -> list[str]:
        """The callee picks up, hears the TwiML, presses `digits` (None: none); returns what was said."""
        self.status(call, "ringing")
        self.status(call, "in-progress")
        params = self._call_params(call, "in-progress")
        url = call.get("Url")
        assert url is not None, "the call carries TwiML, so no keypress can reach the bot"
        code, twiml = self.post(url, params)
        assert code == 200, (code, twiml)
        said = _said(twiml)
        gather = ElementTree.fromstring(twiml).find("Gather")
        if digits is not None and gather is not None:
            action = gather.get("action") or ""
            code, answer = self.post(action, {**params, "Digits": digits})
            assert code == 200, (code, answer)
            said += _said(answer)
            call.events.append(f"pressed {digits}")
        self.status(call, "completed")
        return said

    def gather_request(self, call: Resource, digits: str) -> tuple[str, dict[str, str]]:
        """The URL and fields of a keypress for `call` (to forge or replay it)."""
        url = call.get("Url") or ""
        return url.replace("/twilio/voice", "/twilio/gather"), {
            **self._call_params(call, "in-progress"),
            "Digits": digits,
        }

    def no_answer(self, call: Resource) -> None:
        self.status(call, "ringing")
        self.status(call, "no-answer")

    def sms_in(self, url: str, sender: str, body: str, sid: str | None = None) -> tuple[int, str]:
        params = {
            "MessageSid": sid or "SM" + secrets.token_hex(16),
            "AccountSid": self.account_sid,
            "From": sender,
            "To": FROM_NUMBER,
            "Body": body,
        }
        return self.post(url, params)

    def _call_params(self, call: Resource, status: str) -> dict[str, str]:
        return {
            "CallSid": call.sid,
            "AccountSid": self.account_sid,
            "From": call.get("From") or "",
            "To": call.get("To") or "",
            "CallStatus": status,
            "Direction": "outbound-api",
        }

    # -- the REST API --------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                stand_in._serve(self, "GET")

            def do_POST(self) -> None:
                stand_in._serve(self, "POST")

        return Handler

    def _serve(self, http: BaseHTTPRequestHandler, method: str) -> None:
        parsed = urlparse(http.path)
        match = _PATH.match(parsed.path)
        with self.lock:
            self.requests.append((method, parsed.path))
        if match is None or match.group(1) != self.account_sid:
            return _json(
                http, 404, {"code": 20404, "message": "The requested resource was not found", "status": 404}
            )
        if not self._authorised(http.headers.get("Authorization") or ""):
            return _json(http, 401, {"code": 20003, "message": "Authenticate", "status": 401})
        kind, sid = match.group(2), match.group(3)
        if method == "GET" and sid:
            with self.lock:
                found = self.resources.get(sid)
            if found is None:
                return _json(http, 404, {"code": 20404, "message": "not found", "status": 404})
            return _json(http, 200, found.as_json(self.account_sid))
        if method == "GET":
            return self._list(http, kind, parse_qs(parsed.query))
        length = int(http.headers.get("Content-Length") or 0)
        params = parse_qs(http.rfile.read(length).decode(), keep_blank_values=True)
        if sid:
            return self._update(http, sid, params)
        return self._create(http, kind, params)

    def _update(self, http: BaseHTTPRequestHandler, sid: str, params: dict[str, list[str]]) -> None:
        """Status=canceled stops a call still queued or ringing; on any other call it changes nothing."""
        with self.lock:
            found = self.resources.get(sid)
        if found is None:
            return _json(http, 404, {"code": 20404, "message": "not found", "status": 404})
        wanted = (params.get("Status") or [""])[0]
        if wanted == "canceled" and found.status in ("queued", "ringing"):
            found.events.append("canceled")
            # Twilio tells the status callback afterwards, not inside this answer.
            threading.Thread(target=self._status_quietly, args=(found, "canceled"), daemon=True).start()
            found.status = "canceled"
        elif wanted == "completed" and found.status == "in-progress":
            found.status = "completed"
        return _json(http, 200, found.as_json(self.account_sid))

    def _authorised(self, header: str) -> bool:
        if not header.startswith("Basic "):
            return False
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        if user == self.account_sid:
            return password == self.auth_token
        return self.api_keys.get(user) == password

    def _create(self, http: BaseHTTPRequestHandler, kind: str, params: dict[str, list[str]]) -> None:
        with self.lock:
            refusal = self.refusals.pop(0) if self.refusals else None
        if refusal is not None:
            status, retry_after = refusal
            headers = {"Retry-After": retry_after} if retry_after else {}
            return _json(
                http,
                status,
                {"code": 20429 if status == 429 else 20500, "message": "refused", "status": status},
                headers,
            )
        to = (params.get("To") or [""])[0]
        if not re.match(r"^\+[1-9]\d{6,14}$", to):
            return _json(
                http,
                400,
                {
                    "code": 21211,
                    "message": f"The 'To' number {to} is not a valid phone number.",
                    "status": 400,
                },
            )
        if kind == "Calls" and not (params.get("Url") or params.get("Twiml")):
            return _json(http, 400, {"code": 21205, "message": "Url or Twiml is required", "status": 400})
        if kind == "Messages" and not params.get("Body"):
            return _json(http, 400, {"code": 21602, "message": "Message body is required", "status": 400})
        prefix = "CA" if kind == "Calls" else "SM"
        resource = Resource(prefix + secrets.token_hex(16), kind, params, "queued", datetime.now(UTC))
        with self.created:
            self.resources[resource.sid] = resource
            self.created.notify_all()
        if self.stall_creates.is_set():
            self.release.wait(60)
        return _json(http, 201, resource.as_json(self.account_sid))

    def _list(self, http: BaseHTTPRequestHandler, kind: str, query: dict[str, list[str]]) -> None:
        to, sender = (query.get("To") or [None])[0], (query.get("From") or [None])[0]
        with self.lock:
            found = [
                r
                for r in self.resources.values()
                if r.kind == kind
                and (to is None or r.get("To") == to)
                and (sender is None or r.get("From") == sender)
            ]
        found.sort(key=lambda r: r.created, reverse=True)
        size = int((query.get("PageSize") or ["50"])[0])
        uri = f"/2010-04-01/Accounts/{self.account_sid}/{kind}.json"
        key = kind.lower()
        return _json(
            http,
            200,
            {
                key: [r.as_json(self.account_sid) for r in found[:size]],
                "end": min(len(found), size) - 1,
                "first_page_uri": uri,
                "next_page_uri": None,
                "page": 0,
                "page_size": size,
                "previous_page_uri": None,
                "start": 0,
                "uri": uri,
            },
        )


def _json(
    http: BaseHTTPRequestHandler, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> None:
    data = json.dumps(body).encode()
    http.send_response(status)
    http.send_header("Content-Type", "application/json")
    http.send_header("Content-Length", str(len(data)))
    for name, value in (headers or {}).items():
        http.send_header(name, value)
    http.end_headers()
    http.wfile.write(data)


def _said(twiml: str) -> list[str]:
    root = ElementTree.fromstring(twiml)
    return [(element.text or "").strip() for element in root.iter("Say")]
