"""Short secrets kept in the database encrypted with TOKEN_ENCRYPTION_KEY (Fernet), when
it is set: a personal calendar's address, which carries its owner's private token.

A sealed value is marked `fernet:`, so rows written before the key was set (plain) are
still read, and sealed the next time they are touched. Without the key, values are stored
as other settings are: plain.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken

PREFIX = "fernet:"


class SealBroken(Exception):
    """A sealed value that cannot be opened: no key, or not the key it was sealed with."""


def seal(text: str, key: str | None) -> str:
    if key is None:
        return text
    return PREFIX + Fernet(key.encode()).encrypt(text.encode()).decode()


def unseal(stored: str, key: str | None) -> str:
    if not stored.startswith(PREFIX):
        return stored
    if key is None:
        raise SealBroken("the stored address is encrypted and TOKEN_ENCRYPTION_KEY is not set")
    try:
        return Fernet(key.encode()).decrypt(stored[len(PREFIX) :].encode()).decode()
    except InvalidToken:
        raise SealBroken("the stored address cannot be decrypted with TOKEN_ENCRYPTION_KEY") from None


def is_sealed(stored: str) -> bool:
    return stored.startswith(PREFIX)
