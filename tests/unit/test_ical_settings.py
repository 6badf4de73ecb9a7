"""TIME_OFF_ICAL_URLS: read, checked, and kept out of logs as the secrets they are."""

from __future__ import annotations

import pytest

from bot.env_reader import ConfigError
from tests.support.settings import make_settings


def test_team_feeds_are_read_as_https_and_are_secrets() -> None:
    settings = make_settings(
        "sqlite://",
        TIME_OFF_ICAL_URLS="webcal://acme.pagerduty.com/private/s3cret/feed, https://calendar.example.com/x.ics",
    )
    urls = settings.calendar_feeds.team_urls
    assert urls == ("https://acme.pagerduty.com/private/s3cret/feed", "https://calendar.example.com/x.ics")
    assert set(urls) <= set(settings.secrets())
    assert "s3cret" not in repr(settings) and "s3cret" not in str(settings.redacted())
    assert settings.calendar_feeds.allow_private_hosts is False


def test_a_bad_feed_address_is_refused_without_echoing_it() -> None:
    with pytest.raises(ConfigError) as refused:
        make_settings("sqlite://", TIME_OFF_ICAL_URLS="https://ok.example.com/a.ics ftp://s3cret@host/x")
    assert "TIME_OFF_ICAL_URLS entry 2" in str(refused.value) and "s3cret" not in str(refused.value)
