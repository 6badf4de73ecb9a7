"""Salted hashes of customers' addresses and mails: what an erasure may keep.

The salt is a per-install secret made once and kept in the database, so every replica
hashes alike and a hash cannot be matched against a list of known addresses elsewhere.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.storage.models import AppSecret

SALT_NAME = "erasure_salt"


def erasure_salt(session: Session) -> bytes:
    row = session.get(AppSecret, SALT_NAME)
    if row is not None:
        return row.value.encode()
    value = secrets.token_hex(32)
    try:
        with session.begin_nested():
            session.add(AppSecret(name=SALT_NAME, value=value))
            session.flush()
    except IntegrityError:
        # Another replica made it at the same moment: theirs is the one to hash with.
        row = session.get(AppSecret, SALT_NAME)
        if row is None:
            raise
        return row.value.encode()
    return value.encode()


def digest(salt: bytes, value: str) -> str:
    return hmac.new(salt, value.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


def normalise_address(address: str) -> str:
    return address.strip().lower()


def address_digest(salt: bytes, address: str) -> str:
    return digest(salt, "address:" + normalise_address(address))


def message_id_digest(salt: bytes, message_id: str) -> str:
    return digest(salt, "mid:" + message_id.strip().lower())


def sender_date_digest(salt: bytes, address: str, date: datetime) -> str:
    # A mail without a Message-ID is still known again by who sent it, and when.
    return digest(salt, f"from:{normalise_address(address)}|{int(date.timestamp())}")
