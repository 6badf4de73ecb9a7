"""Secrets sealed with TOKEN_ENCRYPTION_KEY: read back as given, plain ones read as they are,
and a missing or wrong key said in words that name no secret."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from hypothesis import given
from hypothesis import strategies as st

from bot.sealed import SealBroken, is_sealed, seal, unseal

KEY = Fernet.generate_key().decode()


@given(st.text() | st.text().map(lambda t: "fernet:" + t))
def test_sealed_text_opens_to_itself(text: str) -> None:
    sealed = seal(text, KEY)
    assert is_sealed(sealed) and unseal(sealed, KEY) == text


def test_without_a_key_text_stays_plain_and_is_read_plain() -> None:
    url = "https://calendar.example/private-token/basic.ics"
    assert seal(url, None) == url and unseal(url, KEY) == url and unseal(url, None) == url
    sealed = seal(url, KEY)
    assert "private-token" not in sealed


def test_a_missing_or_wrong_key_is_refused_without_the_secret() -> None:
    sealed = seal("https://calendar.example/private-token", KEY)
    with pytest.raises(SealBroken, match="not set"):
        unseal(sealed, None)
    with pytest.raises(SealBroken, match="cannot be decrypted") as info:
        unseal(sealed, Fernet.generate_key().decode())
    assert "private-token" not in str(info.value)
