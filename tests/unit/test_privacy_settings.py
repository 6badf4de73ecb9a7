"""The retention and erasure settings, read from the environment."""

from __future__ import annotations

import pytest

from bot.env_reader import ConfigError, EnvReader
from bot.privacy.settings import PrivacySettings, load_privacy_settings


def load(**env: str) -> PrivacySettings:
    return load_privacy_settings(EnvReader(env))


def test_defaults_keep_everything_forever_and_flag_mail_only() -> None:
    assert load() == PrivacySettings(
        retention_days=None, keep_stats=True, erase_from_mailbox=False, retention_batch=100
    )


def test_each_setting_is_read() -> None:
    settings = load(
        RETENTION_DAYS="730", RETENTION_KEEP_STATS="false", ERASE_FROM_MAILBOX="true", RETENTION_BATCH="50"
    )
    assert settings == PrivacySettings(
        retention_days=730, keep_stats=False, erase_from_mailbox=True, retention_batch=50
    )


@pytest.mark.parametrize("value", ["0", "-3", "soon", "1.5"])
def test_a_retention_period_that_is_not_a_positive_whole_number_of_days_is_refused(value: str) -> None:
    with pytest.raises(ConfigError, match="RETENTION_DAYS"):
        load(RETENTION_DAYS=value)
