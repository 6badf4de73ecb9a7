"""Settings from the environment (and `.env`), validated once at start-up.

Every problem is reported as one line naming the setting, so `supportbot run`
can stop with a message a person can act on. Secrets are kept out of `repr`
so a settings object can never leak a token into a log line.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
from dotenv import dotenv_values

from bot.business_hours import BusinessCalendar, parse_business_hours
from bot.env_reader import ConfigError, EnvReader
from bot.ical_feed_settings import CalendarFeedSettings, read_calendar_feed_settings
from bot.logs import redact
from bot.mail.oauth_settings import MailOAuthSettings, load_mail_oauth
from bot.phone.settings import PhoneSettings, load_phone_settings
from bot.privacy.settings import PrivacySettings, load_privacy_settings
from bot.resources import templates_dir
from bot.sandbox.team import sandbox_settings, sandbox_transport
from rota.compensation import CompensationPolicy, DaysInLieu, PayPerWeightedHour
from rota.duties import DUTY_UNITS, DutyUnit
from rota.load import LoadWeights, parse_load_weights
from rota.pay_rules import MissingPayRate, parse_pay_rates, parse_pay_rules
from rota.planner import PlanConfig

DEFAULT_SLACK_API_URL = "https://slack.com/api/"
DEFAULT_DATABASE_FILE = "supportbot.sqlite3"
# Shipped in the package (see bot/resources): the same directory from a checkout and a wheel.
DEFAULT_TEMPLATES_DIR = templates_dir()
DEFAULT_BUSINESS_HOURS = "mon-fri 09:00-18:00"


def _default_weights() -> LoadWeights:
    return LoadWeights()


SmtpSecurity = Literal["none", "starttls", "ssl"]


@dataclass(frozen=True)
class Settings:
    slack_bot_token: str = field(repr=False)
    slack_signing_secret: str = field(repr=False)
    slack_app_token: str | None = field(repr=False)
    slack_api_url: str
    support_channel: str
    database_url: str = field(repr=False)  # may hold a password
    imap_host: str
    imap_port: int
    imap_user: str
    imap_password: str = field(repr=False)
    imap_ssl: bool
    imap_folder: str
    imap_poll_seconds: float
    imap_idle_seconds: float
    smtp_host: str
    smtp_port: int
    smtp_user: str | None
    smtp_password: str | None = field(repr=False)
    smtp_security: SmtpSecurity
    support_address: str
    http_host: str
    http_port: int
    timezone: ZoneInfo
    holidays_country: str | None
    managers: frozenset[str]
    burst_threshold: int
    slack_pace_seconds: float
    log_level: str
    # Customers' attachments uploaded into the ticket's thread up to this size; 0: none are.
    attachment_upload_max_mb: int = 20
    # No Slack app configured: Slack, the mailbox and SMTP are the embedded stand-ins (bot/sandbox).
    sandbox: bool = False
    # How the sandbox page's requests reach the bot: "socket" (Socket Mode) or "http".
    sandbox_transport: str = "socket"
    # Working tickets from Slack.
    staff_usergroup: str | None = None
    templates_dir: Path = DEFAULT_TEMPLATES_DIR
    reply_late_minutes: float = 30.0
    nudge_minutes: float = 30.0
    business_hours: str = DEFAULT_BUSINESS_HOURS
    # The on-call rota.
    company_days_off: frozenset[date] = frozenset()
    rota_unit: DutyUnit = "week"
    rota_weights: LoadWeights = field(default_factory=_default_weights)
    rota_min_rest_hours: float = 0.0
    rota_max_per_month: int | None = None
    rota_plan_weeks: int = 8
    swap_expiry_hours: float = 48.0
    swap_approval: bool = False
    oncall_usergroup: str | None = None
    comp_policy: Literal["days", "pay"] = "days"
    comp_days_per_week: Decimal = Decimal(1)
    comp_pay_rates: LoadWeights | None = None
    comp_pay_rules: str | None = None  # validated at load; replaces comp_pay_rates when set
    public_url: str | None = None
    # After hours: paging, automatic replies, template automation.
    urgency_rules_file: Path | None = None
    page_repeat_minutes: float = 5.0
    page_repeats: int = 3
    page_dnd_escalate_minutes: float = 1.0
    auto_ack: bool = True
    morning_handover: bool = True
    auto_ack_template: str = "auto_ack"
    auto_reply_cap: int = 10
    auto_reply_cap_hours: float = 3.0
    close_rate_days: float = 7.0
    automation_min_uses: int = 20
    automation_min_close_rate: float = 0.8
    comp_page_work: bool = False
    comp_workday_hours: float = 8.0
    # Satisfaction surveys after a resolution.
    surveys: bool = True
    survey_delay_minutes: float = 60.0
    survey_link_days: int = 30
    survey_secret: str | None = field(default=None, repr=False)
    # Operations: log lines as text or JSON; /metrics on the main port or a port of its own.
    log_format: Literal["text", "json"] = "text"
    metrics_port: int | None = None
    metrics_token: str | None = field(default=None, repr=False)
    # The mailbox or mail server failing this long gets one notice in Slack (bot/health).
    health_notice_minutes: float = 3.0
    # Each feature's own settings, read by its own module (secrets included: each says which).
    mail_oauth: MailOAuthSettings | None = None  # None: IMAP and SMTP log in with passwords
    phone: PhoneSettings | None = None  # None: pages go by Slack only
    privacy: PrivacySettings = field(default_factory=PrivacySettings)
    calendar_feeds: CalendarFeedSettings = field(default_factory=CalendarFeedSettings)

    def calendar(self) -> BusinessCalendar:
        """The team's working calendar: opening hours, time zone, public holidays, company days off."""
        return BusinessCalendar.from_spec(
            self.business_hours, self.timezone, self.holidays_country, self.company_days_off
        )

    def plan_config(self) -> PlanConfig:
        return PlanConfig(
            unit=self.rota_unit,
            weights=self.rota_weights,
            min_rest=timedelta(hours=self.rota_min_rest_hours),
            max_per_month=self.rota_max_per_month,
        )

    def compensation(self) -> CompensationPolicy:
        if self.comp_policy == "pay" and self.comp_pay_rules is not None:
            return parse_pay_rules(self.comp_pay_rules)
        if self.comp_policy == "pay" and self.comp_pay_rates is not None:
            # The rates are money per hour by kind: a weight of 1 money unit times the rate.
            return PayPerWeightedHour(rate=Decimal(1), weights=self.comp_pay_rates)
        return DaysInLieu(days_per_week=self.comp_days_per_week)

    @property
    def base_url(self) -> str:
        """Where people reach the bot's HTTP server (calendar feeds)."""
        return (self.public_url or f"http://{self.http_host}:{self.http_port}").rstrip("/")

    @property
    def socket_mode(self) -> bool:
        return bool(self.slack_app_token)

    def secrets(self) -> list[str]:
        """Every secret value, and the forms they take on the wire, for the log filter."""
        values = [
            self.slack_bot_token,
            self.slack_signing_secret,
            self.slack_app_token,
            self.imap_password,
            self.smtp_password,
            self.survey_secret,
            self.metrics_token,
            url_password(self.database_url),
            *(self.mail_oauth.secrets() if self.mail_oauth else ()),
            *(self.phone.secrets() if self.phone else ()),
            *self.calendar_feeds.secrets(),
        ]
        # SMTP AUTH PLAIN and LOGIN send these base64 blobs; a server may quote them back.
        if self.smtp_user and self.smtp_password:
            for clear in (f"\0{self.smtp_user}\0{self.smtp_password}", self.smtp_password):
                values.append(base64.b64encode(clear.encode()).decode())
        return [v for v in values if v]

    def redacted(self) -> dict[str, object]:
        """What is safe to log: every field, secrets replaced by a marker."""
        out: dict[str, object] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = "***" if not f.repr and value else value
        out["database_url"] = redact_url(self.database_url)
        return out


def redact_url(url: str) -> str:
    """Hide the password in a URL like postgresql://user:secret@host/db."""
    # Up to the last @ before the path: an unescaped @ in the password stays hidden.
    return re.sub(r"(//[^/:@]*:)[^/]*@", r"\1***@", url)


SECRET_SETTINGS = (
    "SLACK_BOT_TOKEN",
    "SLACK_SIGNING_SECRET",
    "SLACK_APP_TOKEN",
    "IMAP_PASSWORD",
    "SMTP_PASSWORD",
    "SURVEY_SECRET",
    "METRICS_TOKEN",
    "MS_CLIENT_SECRET",  # bot/mail/oauth_settings.py
    "TOKEN_ENCRYPTION_KEY",
    "TWILIO_AUTH_TOKEN",
    "TWILIO_API_KEY_SECRET",
)


def url_password(url: str) -> str | None:
    # Everything between the user's colon and the last @ before the path: a password
    # holding an unescaped @ is still hidden whole.
    match = re.match(r"^[^:/]+://[^/:@]*:([^/]*)@[^@/]*(/|$)", url)
    return match[1] if match and match[1] else None


def secret_values(env: Mapping[str, str]) -> list[str]:
    """The values of the secret settings in `env`, the password in DATABASE_URL included."""
    values = [env[name].strip() for name in SECRET_SETTINGS if (env.get(name) or "").strip()]
    password = url_password((env.get("DATABASE_URL") or "").strip())
    return [*values, *([password] if password else [])]


_EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")
_SLACK_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")


def load_settings(env: Mapping[str, str] | None = None, *, dotenv: Path | None = None) -> Settings:
    """Read and validate settings; raises ConfigError naming the first bad one.

    `.env` fills in what the real environment leaves unset (the environment wins,
    as deploy scripts expect).
    """
    if env is None:
        merged: dict[str, str] = {}
        path = dotenv if dotenv is not None else Path.cwd() / ".env"
        if path.is_file():
            merged.update({k: v for k, v in dotenv_values(path).items() if v is not None})
        merged.update(os.environ)
        env = merged
    try:
        return _settings_from(env)
    except ConfigError as exc:
        # Messages quote the value they refuse, and a secret pasted into the wrong
        # setting (a token as SUPPORT_CHANNEL) must not be printed back.
        raise ConfigError(redact(str(exc), secret_values(env))) from None


def _settings_from(env: Mapping[str, str]) -> Settings:
    r = EnvReader(env)

    # No bot token means nobody has created a Slack app yet: run the local sandbox, whose
    # stand-ins supply every Slack, mailbox and SMTP setting. A token means a real
    # deployment, where each missing setting below is an error naming it.
    sandbox = r.raw("SLACK_BOT_TOKEN") is None
    if sandbox:
        r = EnvReader({**env, **sandbox_settings()})

    bot_token = r.required("SLACK_BOT_TOKEN", "the Bot User OAuth Token (xoxb-…) of your Slack app")
    if not bot_token.startswith("xoxb-"):
        raise ConfigError("SLACK_BOT_TOKEN must be a bot token starting with 'xoxb-'")
    app_token = r.raw("SLACK_APP_TOKEN")
    if app_token is not None and not app_token.startswith("xapp-"):
        raise ConfigError("SLACK_APP_TOKEN must be an app-level token starting with 'xapp-'")
    if app_token is None:
        signing_secret = r.required(
            "SLACK_SIGNING_SECRET", "needed in HTTP mode (or set SLACK_APP_TOKEN for Socket Mode)"
        )
    else:
        signing_secret = r.raw("SLACK_SIGNING_SECRET") or ""

    api_url = r.text("SLACK_API_URL", DEFAULT_SLACK_API_URL)
    if not re.match(r"^https?://[^/\s]+", api_url):
        raise ConfigError(f"SLACK_API_URL must be an http(s) URL, got {api_url!r}")
    if not api_url.endswith("/"):
        api_url += "/"

    channel = r.required("SUPPORT_CHANNEL", "the Slack channel ID (C…) where tickets are posted")
    if not re.match(r"^[CG][A-Z0-9]{2,}$", channel):
        raise ConfigError(
            f"SUPPORT_CHANNEL must be a channel ID like C0123456789 (not a #name), got {channel!r}"
        )

    database_url = r.text("DATABASE_URL", f"sqlite:///{DEFAULT_DATABASE_FILE}")
    if database_url.startswith("postgres://"):
        # Heroku-style URLs name a dialect SQLAlchemy no longer accepts.
        database_url = "postgresql+psycopg://" + database_url[len("postgres://") :]
    elif database_url.startswith("postgresql://"):
        database_url = "postgresql+psycopg://" + database_url[len("postgresql://") :]
    if not database_url.startswith(("sqlite:", "postgresql+psycopg:")):
        raise ConfigError("DATABASE_URL must be a sqlite:/// or postgresql:// URL")
    if database_url.split("://", 1)[-1].split("/", 1)[0].count("@") > 1:
        # The driver would take what follows the first @ for the host and quote it in its
        # connection errors: a piece of the password.
        raise ConfigError("DATABASE_URL has an @ in its password: write it as %40")

    imap_ssl = r.boolean("IMAP_SSL", True)
    imap_host = r.required("IMAP_HOST", "the support mailbox's IMAP server")
    imap_port = r.integer("IMAP_PORT", 993 if imap_ssl else 143, 1, 65535)
    imap_user = r.required("IMAP_USER", "the support mailbox's login")
    mail_oauth = load_mail_oauth(r)
    # With OAuth (MAIL_AUTH) the mailbox and the mail server take a token instead.
    imap_password = (
        (r.raw("IMAP_PASSWORD") or "")
        if mail_oauth
        else r.required("IMAP_PASSWORD", "the support mailbox's password (or set MAIL_AUTH for OAuth)")
    )

    security = r.text("SMTP_SECURITY", "starttls").lower()
    if security not in {"none", "starttls", "ssl"}:
        raise ConfigError(f"SMTP_SECURITY must be one of none, starttls, ssl; got {security!r}")
    default_smtp_port = {"none": 25, "starttls": 587, "ssl": 465}[security]
    smtp_host = r.required("SMTP_HOST", "the server replies are sent through")
    smtp_user = r.raw("SMTP_USER")
    smtp_password = r.raw("SMTP_PASSWORD")
    if smtp_user and not smtp_password and not mail_oauth:
        raise ConfigError("SMTP_PASSWORD is not set but SMTP_USER is")

    address = r.required("SUPPORT_ADDRESS", "the address customers write to, e.g. help@example.com")
    if not _EMAIL.match(address):
        raise ConfigError(f"SUPPORT_ADDRESS must be an email address, got {address!r}")

    tz_name = r.text("TIMEZONE", "UTC")
    try:
        timezone = ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"TIMEZONE must be an IANA time zone like Europe/Rome, got {tz_name!r}") from None

    country = r.raw("HOLIDAYS_COUNTRY")
    if country is not None:
        if country.upper() not in holidays.list_supported_countries():
            raise ConfigError(f"HOLIDAYS_COUNTRY must be an ISO country code, got {country!r}")
        country = country.upper()

    managers_raw = r.raw("MANAGERS") or ""
    managers = frozenset(m.strip() for m in managers_raw.split(",") if m.strip())
    for manager in managers:
        if not _SLACK_ID.match(manager):
            raise ConfigError(f"MANAGERS must be Slack user IDs (U…) separated by commas, got {manager!r}")

    usergroup = r.raw("STAFF_USERGROUP")
    if usergroup is not None and not re.match(r"^S[A-Z0-9]{2,}$", usergroup):
        raise ConfigError(f"STAFF_USERGROUP must be a user group ID like S0123ABC, got {usergroup!r}")
    templates_dir = Path(r.text("TEMPLATES_DIR", str(DEFAULT_TEMPLATES_DIR)))
    if not templates_dir.is_dir():
        raise ConfigError(f"TEMPLATES_DIR must be a directory of reply templates, got {str(templates_dir)!r}")

    business_hours = r.text("BUSINESS_HOURS", DEFAULT_BUSINESS_HOURS)
    try:
        parse_business_hours(business_hours)
    except ValueError as exc:
        raise ConfigError(f"BUSINESS_HOURS is not valid ({exc}); e.g. 'mon-fri 09:00-18:00'") from None

    rota = _rota_settings(r)

    return Settings(
        slack_bot_token=bot_token,
        slack_signing_secret=signing_secret,
        slack_app_token=app_token,
        slack_api_url=api_url,
        support_channel=channel,
        database_url=database_url,
        imap_host=imap_host,
        imap_port=imap_port,
        imap_user=imap_user,
        imap_password=imap_password,
        imap_ssl=imap_ssl,
        imap_folder=r.text("IMAP_FOLDER", "INBOX"),
        imap_poll_seconds=r.number("IMAP_POLL_SECONDS", 30.0, 0.1, 3600.0),
        # RFC 2177: servers may drop an IDLE after 30 minutes; re-issue well before.
        imap_idle_seconds=r.number("IMAP_IDLE_SECONDS", 25 * 60.0, 1.0, 29 * 60.0),
        smtp_host=smtp_host,
        smtp_port=r.integer("SMTP_PORT", default_smtp_port, 1, 65535),
        smtp_user=smtp_user,
        smtp_password=smtp_password,
        smtp_security=security,  # type: ignore[arg-type]
        support_address=address.lower(),
        http_host=r.text("HTTP_HOST", "127.0.0.1"),
        http_port=r.integer("HTTP_PORT", 3000, 0, 65535),
        timezone=timezone,
        holidays_country=country,
        managers=managers,
        burst_threshold=r.integer("BURST_THRESHOLD", 20, 2, 100_000),
        slack_pace_seconds=r.number("SLACK_PACE_SECONDS", 1.0, 0.0, 60.0),
        # Slack takes files up to 1 GB; past that a setting is surely a typo.
        attachment_upload_max_mb=r.integer("ATTACHMENT_UPLOAD_MAX_MB", 20, 0, 1000),
        log_level=r.text("LOG_LEVEL", "INFO").upper(),
        sandbox=sandbox,
        sandbox_transport=sandbox_transport(r) if sandbox else "socket",
        staff_usergroup=usergroup,
        templates_dir=templates_dir,
        reply_late_minutes=r.number("REPLY_LATE_MINUTES", 30.0, 1.0, 7 * 24 * 60.0),
        nudge_minutes=r.number("NUDGE_MINUTES", 30.0, 1.0, 7 * 24 * 60.0),
        business_hours=business_hours,
        **rota,
        **_survey_settings(r),
        **_operations_settings(r),
        mail_oauth=mail_oauth,
        phone=load_phone_settings(r),
        privacy=load_privacy_settings(r),
        calendar_feeds=read_calendar_feed_settings(r),
    )


def _rota_settings(r: EnvReader) -> dict[str, object]:
    unit = r.text("ROTA_UNIT", "week").lower()
    if unit not in DUTY_UNITS:
        raise ConfigError(f"ROTA_UNIT must be one of {', '.join(DUTY_UNITS)}, got {unit!r}")
    try:
        weights = parse_load_weights(r.text("ROTA_LOAD_WEIGHTS", ""))
    except ValueError as exc:
        raise ConfigError(
            f"ROTA_LOAD_WEIGHTS is not valid ({exc}); e.g. 'weeknight=1, weekend=1.5, holiday=2'"
        ) from None
    days_off: set[date] = set()
    for part in (p.strip() for p in (r.raw("COMPANY_DAYS_OFF") or "").split(",")):
        if part:
            try:
                days_off.add(date.fromisoformat(part))
            except ValueError:
                raise ConfigError(
                    f"COMPANY_DAYS_OFF must be dates like 2026-12-24, separated by commas; got {part!r}"
                ) from None
    cap = r.raw("ROTA_MAX_PER_MONTH")
    oncall_group = r.raw("ONCALL_USERGROUP")
    if oncall_group is not None and not re.match(r"^S[A-Z0-9]{2,}$", oncall_group):
        raise ConfigError(f"ONCALL_USERGROUP must be a user group ID like S0123ABC, got {oncall_group!r}")
    policy = r.text("COMP_POLICY", "days").lower()
    if policy not in {"days", "pay"}:
        raise ConfigError(f"COMP_POLICY must be days or pay, got {policy!r}")
    raw_days = r.text("COMP_DAYS_PER_WEEK", "1")
    try:
        days_per_week = Decimal(raw_days)
    except InvalidOperation:
        days_per_week = Decimal("NaN")
    if not days_per_week.is_finite() or not Decimal(0) < days_per_week <= Decimal(7):
        raise ConfigError(f"COMP_DAYS_PER_WEEK must be a number above 0 and at most 7, got {raw_days!r}")
    rates = None
    pay_rules = _pay_rules_setting(r, policy, bool(days_off))
    if policy == "pay" and pay_rules is None:
        spec = r.required(
            "COMP_PAY_RATES",
            "with COMP_POLICY=pay, the pay per hour by kind, e.g. 'weeknight=10, weekend=15, holiday=20'"
            " (or COMP_PAY_RULES)",
        )
        try:
            rates = parse_pay_rates(spec)
        except MissingPayRate as exc:
            raise ConfigError(
                f"COMP_PAY_RATES gives no rate for {' or '.join(exc.kinds)}: name every kind,"
                " e.g. 'weeknight=10, weekend=15, holiday=20'"
            ) from None
        except ValueError as exc:
            raise ConfigError(
                f"COMP_PAY_RATES is not valid ({exc}); e.g. 'weeknight=10, weekend=15, holiday=20'"
            ) from None
    public_url = r.raw("PUBLIC_URL")
    if public_url is not None and not re.match(r"^https?://[^/\s]+", public_url):
        raise ConfigError(f"PUBLIC_URL must be an http(s) URL, got {public_url!r}")
    return {
        "company_days_off": frozenset(days_off),
        "rota_unit": unit,
        "rota_weights": weights,
        "rota_min_rest_hours": r.number("ROTA_MIN_REST_HOURS", 0.0, 0.0, 24 * 60.0),
        "rota_max_per_month": None if cap is None else r.integer("ROTA_MAX_PER_MONTH", 0, 1, 31),
        "rota_plan_weeks": r.integer("ROTA_PLAN_WEEKS", 8, 1, 104),
        "swap_expiry_hours": r.number("SWAP_EXPIRY_HOURS", 48.0, 0.1, 24 * 60.0),
        "swap_approval": r.boolean("SWAP_APPROVAL", False),
        "oncall_usergroup": oncall_group,
        "comp_policy": policy,
        "comp_days_per_week": days_per_week,
        "comp_pay_rates": rates,
        "comp_pay_rules": pay_rules,
        "public_url": public_url,
        **_after_hours_settings(r),
    }


def _pay_rules_setting(r: EnvReader, policy: str, has_days_off: bool) -> str | None:
    spec = r.raw("COMP_PAY_RULES")
    if spec is None:
        return None
    if policy != "pay":
        raise ConfigError("COMP_PAY_RULES is set but COMP_POLICY is not pay; set COMP_POLICY=pay")
    try:
        rules = parse_pay_rules(spec)
    except ValueError as exc:
        raise ConfigError(
            f"COMP_PAY_RULES is not valid ({exc}); e.g. 'holiday = 20; sat,sun = 15; * = 10'"
        ) from None
    # Unpaid after-hours time is almost always a forgotten rule (the early hours of
    # Monday after `mon-fri 22:00-06:00`), so it stops start-up; `* = 0` says it on purpose.
    hours = parse_business_hours(r.text("BUSINESS_HOURS", DEFAULT_BUSINESS_HOURS))  # already checked
    holidays_possible = has_days_off or r.raw("HOLIDAYS_COUNTRY") is not None
    unpaid = rules.unpaid_after_hours(hours, holidays=holidays_possible)
    if unpaid is not None:
        raise ConfigError(
            f"COMP_PAY_RULES pays nothing for {unpaid}; add a rule for it, or end with '* = 0' to leave"
            " the rest unpaid"
        )
    return spec


def _after_hours_settings(r: EnvReader) -> dict[str, object]:
    rules_file = r.raw("URGENCY_RULES_FILE")
    if rules_file is not None and not Path(rules_file).is_file():
        raise ConfigError(f"URGENCY_RULES_FILE must be a file of urgency rules, got {rules_file!r}")
    template = r.text("AUTO_ACK_TEMPLATE", "auto_ack")
    if not re.match(r"^[a-z0-9_][a-z0-9_-]*$", template):
        raise ConfigError(f"AUTO_ACK_TEMPLATE must be a template name like auto_ack, got {template!r}")
    return {
        "urgency_rules_file": Path(rules_file) if rules_file else None,
        "page_repeat_minutes": r.number("PAGE_REPEAT_MINUTES", 5.0, 0.1, 24 * 60.0),
        "page_repeats": r.integer("PAGE_REPEATS", 3, 0, 20),
        "page_dnd_escalate_minutes": r.number("PAGE_DND_ESCALATE_MINUTES", 1.0, 0.0, 24 * 60.0),
        "auto_ack": r.boolean("AUTO_ACK", True),
        "morning_handover": r.boolean("MORNING_HANDOVER", True),
        "auto_ack_template": template,
        "auto_reply_cap": r.integer("AUTO_REPLY_CAP", 10, 1, 10_000),
        "auto_reply_cap_hours": r.number("AUTO_REPLY_CAP_HOURS", 3.0, 0.1, 24 * 30.0),
        "close_rate_days": r.number("CLOSE_RATE_DAYS", 7.0, 1.0, 365.0),
        "automation_min_uses": r.integer("AUTOMATION_MIN_USES", 20, 1, 100_000),
        "automation_min_close_rate": r.number("AUTOMATION_MIN_CLOSE_RATE", 0.8, 0.0, 1.0),
        "comp_page_work": r.boolean("COMP_PAGE_WORK", False),
        "comp_workday_hours": r.number("COMP_WORKDAY_HOURS", 8.0, 1.0, 24.0),
    }


def _survey_settings(r: EnvReader) -> dict[str, object]:
    secret = r.raw("SURVEY_SECRET")
    # Anyone who knows the key can answer any survey; a short one can be guessed offline
    # from a single link, since the link carries its own MAC.
    if secret is not None and len(secret) < 32:
        raise ConfigError("SURVEY_SECRET must be at least 32 characters (e.g. `openssl rand -hex 32`)")
    return {
        "surveys": r.boolean("SURVEYS", True),
        "survey_delay_minutes": r.number("SURVEY_DELAY_MINUTES", 60.0, 0.0, 30 * 24 * 60.0),
        "survey_link_days": r.integer("SURVEY_LINK_DAYS", 30, 1, 3650),
        "survey_secret": secret,
    }


def _operations_settings(r: EnvReader) -> dict[str, object]:
    log_format = r.text("LOG_FORMAT", "text").lower()
    if log_format not in ("text", "json"):
        raise ConfigError(f"LOG_FORMAT must be text or json, got {log_format!r}")
    port = r.raw("METRICS_PORT")
    token = r.raw("METRICS_TOKEN")
    if token is not None and len(token) < 16:
        # Shorter tokens are guessable, and the log filter masks only values of 6 characters or more.
        raise ConfigError("METRICS_TOKEN must be at least 16 characters long")
    return {
        "log_format": log_format,
        "metrics_port": r.integer("METRICS_PORT", 0, 0, 65535) if port is not None else None,
        "metrics_token": token,
        "health_notice_minutes": r.number("HEALTH_NOTICE_MINUTES", 3.0, 0.0, 24 * 60.0),
    }
