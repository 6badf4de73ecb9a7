"""Signed survey links: each carries its own proof, so the bot keeps no per-link state.

A link says `survey id, answer, expiry` and carries an HMAC-SHA256 of them under a
server key: it cannot be edited into another survey's or another answer's, and the
key never leaves the server.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import struct
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

from sqlalchemy.orm import Session

from bot.storage.app_secrets import app_secret

if TYPE_CHECKING:
    from bot.config import Settings

# The name of the generated link key in `app_secrets`.
SECRET_NAME = "survey_links"

Action = Literal["yes", "no", "unsubscribe"]
_ACTION_CODES: dict[Action, int] = {"yes": 1, "no": 2, "unsubscribe": 3}
_ACTIONS: dict[int, Action] = {code: action for action, code in _ACTION_CODES.items()}

# version, survey id, action, expiry (Unix seconds): 14 bytes, then the 32-byte MAC;
# 62 URL-safe characters in all, short enough for any mail client to keep on one line.
_TOKEN_VERSION = 1
_PAYLOAD = struct.Struct(">BQBI")
_MAC_SIZE = hashlib.sha256().digest_size
_TOKEN_SIZE = _PAYLOAD.size + _MAC_SIZE
_TOKEN_CHARS = re.compile(r"^[A-Za-z0-9_-]+$")
# Domain separation: the same SURVEY_SECRET could one day key something else.
_KEY_LABEL = b"supportbot survey links v1"


class LinkError(ValueError):
    """The token is not a link we made (forged, mangled, or for a key we no longer have)."""


class LinkExpired(LinkError):
    """A link we made, past its expiry: still says which survey, so the page can say so kindly."""

    def __init__(self, claim: LinkClaim) -> None:
        super().__init__("the link has expired")
        self.claim = claim


@dataclass(frozen=True)
class LinkClaim:
    survey_id: int
    action: Action
    expires_at: datetime


def link_key(secret: str) -> bytes:
    return hmac.new(secret.encode("utf-8"), _KEY_LABEL, hashlib.sha256).digest()


def sign_link(key: bytes, survey_id: int, action: Action, expires_at: datetime) -> str:
    payload = _PAYLOAD.pack(_TOKEN_VERSION, survey_id, _ACTION_CODES[action], int(expires_at.timestamp()))
    mac = hmac.new(key, payload, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(payload + mac).rstrip(b"=").decode("ascii")


def read_link(key: bytes, token: str, now: datetime) -> LinkClaim:
    """The claim a token makes, if we signed it; raises LinkError or LinkExpired.

    Only the canonical encoding is accepted: base64 leaves two spare bits in the last
    character, and a decoder that ignored them would take four spellings of one token.
    """
    if len(token) != (_TOKEN_SIZE * 4 + 2) // 3 or not _TOKEN_CHARS.match(token):
        raise LinkError("not a survey link")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        raise LinkError("not a survey link") from None
    if len(raw) != _TOKEN_SIZE or base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != token:
        raise LinkError("not a survey link")
    payload, mac = raw[: _PAYLOAD.size], raw[_PAYLOAD.size :]
    if not hmac.compare_digest(mac, hmac.new(key, payload, hashlib.sha256).digest()):
        raise LinkError("not a survey link")
    version, survey_id, code, expiry = _PAYLOAD.unpack(payload)
    if version != _TOKEN_VERSION or code not in _ACTIONS:
        raise LinkError("not a survey link")
    claim = LinkClaim(survey_id, _ACTIONS[code], datetime.fromtimestamp(expiry, UTC))
    # Opting out never expires: an old email's link must still stop the emails.
    if claim.action != "unsubscribe" and now >= claim.expires_at:
        raise LinkExpired(claim)
    return claim


def survey_key(session: Session, settings: Settings, *, create: bool = False) -> bytes | None:
    """The link key: from SURVEY_SECRET, else made once and kept in the database for every replica.

    Readers pass `create=False`: with no key yet, no link can be valid, and a request
    for a forged link must not write anything.
    """
    if settings.survey_secret:
        return link_key(settings.survey_secret)
    value = app_secret(session, SECRET_NAME, create=create)
    return link_key(value) if value is not None else None


def survey_links(settings: Settings, key: bytes, survey_id: int, expires_at: datetime) -> dict[Action, str]:
    return {
        action: f"{settings.base_url}/survey/{sign_link(key, survey_id, action, expires_at)}"
        for action in _ACTION_CODES
    }


# Added to a survey email whose (edited) template dropped a link: it must stay answerable
# and stoppable. Its languages are the ones a survey is written in.
FALLBACK_LINKS = {
    "en": "Did we solve it?\nYes, solved: {yes}\nNo, not yet: {no}\n\nNo more surveys: {unsubscribe}\n",
    "it": (
        "Abbiamo risolto?\nSì, risolto: {yes}\nNo, non ancora: {no}\n\nNiente più sondaggi: {unsubscribe}\n"
    ),
}
