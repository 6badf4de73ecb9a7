"""Salted hashes of customers' addresses and mails: what an erasure may keep.

The salt is a per-install secret made once and kept in the database, so every replica
hashes alike and a hash cannot be matched against a list of known addresses elsewhere.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime

from sqlalchemy.orm import Session

from bot.storage.app_secrets import app_secret

SALT_NAME = "erasure_salt"


def erasure_salt(session: Session) -> bytes:
    salt = app_secret(session, SALT_NAME)
    assert salt is not None  # made when missing
    return salt.encode()


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
