"""Settings for calendars read from outside (rota import, time-off feeds)."""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.env_reader import ConfigError, EnvReader
from bot.ical_fetch import FetchFailed, normalise_url
from bot.mail.oauth_settings import read_token_key


@dataclass(frozen=True)
class CalendarFeedSettings:
    # Team calendars of absences; their URLs carry secrets.
    team_urls: tuple[str, ...] = field(default=(), repr=False)
    # Tests and the sandbox serve calendars on 127.0.0.1; production refuses private hosts.
    allow_private_hosts: bool = False
    # TOKEN_ENCRYPTION_KEY: when set, feed addresses are stored encrypted (bot/sealed.py).
    url_key: str | None = field(default=None, repr=False)

    def secrets(self) -> list[str]:
        return [*self.team_urls, *([self.url_key] if self.url_key else [])]


def read_calendar_feed_settings(r: EnvReader) -> CalendarFeedSettings:
    urls = []
    for word in (r.raw("TIME_OFF_ICAL_URLS") or "").replace(",", " ").split():
        try:
            urls.append(normalise_url(word))
        except FetchFailed:
            # The value is a secret: name its position, not its text.
            raise ConfigError(
                f"TIME_OFF_ICAL_URLS entry {len(urls) + 1} is not an https:// or webcal:// address"
            ) from None
    return CalendarFeedSettings(
        tuple(urls), r.boolean("ICAL_ALLOW_PRIVATE_HOSTS", False), url_key=read_token_key(r)
    )
