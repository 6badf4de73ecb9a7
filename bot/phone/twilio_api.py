"""The real `twilio` client, pointed at TWILIO_API_URL (a local stand-in in tests and the sandbox).

twilio-python builds every URL from https://api.twilio.com; its edge and region options
only change the host's name within twilio.com. An HttpClient is the seam the library
offers: ours rewrites that base to TWILIO_API_URL and keeps the last answer's headers, so
a 429's Retry-After is not lost inside TwilioRestException.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from bot.phone.settings import TWILIO_API, TwilioSettings

# twilio logs every request at INFO; the outbox logs what matters about each try.
_quiet = logging.getLogger("bot.phone.twilio_http")
_quiet.setLevel(logging.WARNING)

TIMEOUT_SECONDS = 10.0


class RedirectedHttpClient(TwilioHttpClient):
    def __init__(self, api_url: str) -> None:
        super().__init__(timeout=TIMEOUT_SECONDS, logger=_quiet)
        self.api_url = api_url.rstrip("/")
        self._last = threading.local()

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        if self.api_url != TWILIO_API and url.startswith(TWILIO_API):
            url = self.api_url + url[len(TWILIO_API) :]
        response = super().request(method, url, *args, **kwargs)
        self._last.headers = dict(response.headers or {})
        return response

    def last_header(self, name: str) -> str | None:
        headers: dict[str, str] = getattr(self._last, "headers", {})
        return next((v for k, v in headers.items() if k.lower() == name.lower()), None)


def make_client(settings: TwilioSettings) -> tuple[Client, RedirectedHttpClient]:
    username, password = settings.credentials
    http = RedirectedHttpClient(settings.api_url)
    # environment={} so nothing is read from TWILIO_* variables behind our back.
    client = Client(username, password, settings.account_sid, http_client=http, environment={})
    return client, http
