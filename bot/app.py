"""The composition root: the one place that builds services, listeners and jobs, for one
process holding the Slack app, the HTTP server, and (on the leader) the mailbox watcher,
the outbox workers and the scheduler. Nothing imports this module but entry points
(bot/cli.py, the sandbox, tests), so it may import everything."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from slack_bolt import App, BoltResponse
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_bolt.logger import get_bolt_logger
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from bot.clock import Clock, SystemClock
from bot.config import ConfigError, Settings
from bot.health.connections import Service
from bot.ical_http import ical_app
from bot.leader import Leadership
from bot.mail.erase import mailbox_erase_handlers
from bot.mail.sender import smtp_handlers
from bot.mail.watcher import MailboxSettings, MailboxWatcher
from bot.mail.xoauth2 import mail_token_source
from bot.metrics import DeliveryMetrics, MeasuredApp, Metrics, StateCollector, ack_timer, metrics_endpoint
from bot.outbox.queue import FILES_LANE_PREFIX, IMAP_LANE_PREFIX, PHONE_LANE_PREFIX, SMTP_SEND
from bot.outbox.worker import Backoff, OutboxWorker, outbox_stats
from bot.phone.delivery import phone_handlers
from bot.phone.webhooks import twilio_app
from bot.scheduler import ScheduledJobs, install_standard_jobs, make_scheduler
from bot.services import Services, make_web_client
from bot.slack.delivery import attachment_refused, slack_handlers
from bot.slack.health_notices import HealthReporter
from bot.slack.mail_notices import burst_post, reply_notice
from bot.slack.paging import pager
from bot.socket_mode import first_delivery_only
from bot.storage.db import make_engine, make_sessionmaker, upgrade
from bot.survey_http import survey_app
from bot.tickets.triage_worker import TriageWorker
from bot.web import HttpServer, Router, SlackGate, json_response
from handlers import register_all
from handlers.access import Access
from handlers.common import People
from handlers.spam import Protected

log = logging.getLogger(__name__)


def make_services(
    settings: Settings, factory: sessionmaker[Session], clock: Clock, client: WebClient
) -> tuple[Services, Access, People]:
    """What every listener shares: one access check (its staff list cached), one cache of
    Slack names, one cache of the addresses spam handling must never block."""
    access = Access(settings, client)
    people = People(client)
    services = Services(
        settings, factory, clock, client, names=people, protected=Protected(settings, client, access)
    )
    return services, access, people


class _TokenFromEnvironment(logging.Filter):
    """Bolt reads SLACK_BOT_TOKEN from the environment by itself and, given our client too,
    warns at every start that the token is unused: our client holds that very token."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != warning_client_prioritized_and_token_skipped()


# Room for the answers of every request that can wait at once (32 HTTP threads, Socket
# Mode's workers) beside a burst's worth of listeners holding their work back.
LISTENER_THREADS = 256


def make_bolt_app(services: Services, access: Access, people: People, metrics: Metrics) -> App:
    settings = services.settings
    bolt_log = get_bolt_logger(App)
    if not any(isinstance(f, _TokenFromEnvironment) for f in bolt_log.filters):
        bolt_log.addFilter(_TokenFromEnvironment())
    app = MeasuredApp(
        client=services.client,
        signing_secret=settings.slack_signing_secret or None,
        # We check the token ourselves at start-up, with a message naming the setting.
        token_verification_enabled=False,
        request_verification_enabled=not settings.socket_mode,
        # Bolt answers Slack only once a listener has called ack(), so a burst of clicks must
        # not wait for one of the default ten workers (HTTP serves 32 requests at once), nor
        # for threads held by listeners whose work waits for others' answers
        # (bot/answer_first.py). Threads start only as a burst needs them.
        listener_executor=ThreadPoolExecutor(LISTENER_THREADS, thread_name_prefix="bolt-listener"),
    )
    app.use(ack_timer(metrics, app))
    if settings.socket_mode:
        # Before any listener: Slack redelivers over the socket what it thinks went unanswered.
        app.use(first_delivery_only(services.factory))
    register_all(app, services, access, people)
    app.error(_unreadable_request)
    return app


def _unreadable_request(error: Exception) -> BoltResponse:
    # Bolt's matchers raise on payloads of shapes Slack never sends (`actions` a string, a
    # view without `type`); that is a bad request, not a server error.
    log.error("a Slack request could not be handled", exc_info=error)
    return BoltResponse(status=400, body="")


SOCKET_PING_SECONDS = 2.0

_REFUSED_TOKEN = {"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired"}


def verify_slack_token(client: WebClient) -> dict[str, Any] | None:
    """Stop start-up on a refused token; tolerate an unreachable Slack (the outbox waits)."""
    try:
        return dict(client.auth_test().data)  # type: ignore[arg-type]
    except SlackApiError as exc:
        error = exc.response.get("error") if isinstance(exc.response.data, dict) else exc.response.status_code
        if error in _REFUSED_TOKEN:
            raise ConfigError(f"SLACK_BOT_TOKEN was refused by Slack ({error})") from None
        log.warning("Slack answered auth.test with %s; continuing, posts will wait in the outbox", error)
    except Exception as exc:
        log.warning("cannot reach Slack at start-up (%s); continuing, posts will wait in the outbox", exc)
    return None


class SupportBot:
    def __init__(
        self, settings: Settings, *, clock: Clock | None = None, engine: Engine | None = None
    ) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.engine = engine or make_engine(settings.database_url)
        self.factory = make_sessionmaker(self.engine)
        self.client = make_web_client(settings)
        # None with passwords; with MAIL_AUTH, IMAP and SMTP log in with its tokens. On the real
        # clock, not self.clock (moved by tests and the sandbox): a token's lifetime passes at the
        # provider, and the watcher renews its session by the real clock too. Mixed, a clock in
        # the past made every IMAP session end right after its login, in a tight loop.
        self.mail_tokens = mail_token_source(settings, self.factory, SystemClock())
        self.services, self.access, people = make_services(settings, self.factory, self.clock, self.client)
        self.metrics = Metrics()
        self.bolt = make_bolt_app(self.services, self.access, people, self.metrics)
        self.metrics.registry.register(
            StateCollector(
                self.factory,
                self.clock,
                channels=[settings.support_channel],
                is_leader=lambda: self.leadership.is_leader,
                imap_connected=lambda: bool(self.watcher and self.watcher.connected.is_set()),
            )
        )
        self.http: HttpServer | None = None
        self.metrics_http: HttpServer | None = None
        self.socket_mode: Any = None
        self.watcher: MailboxWatcher | None = None
        self.workers: list[OutboxWorker] = []
        self.triage: TriageWorker | None = None
        self.scheduler: Any = None
        self.leadership = Leadership(self.engine, self._become_leader, self._stop_leading)
        self._duties_lock = threading.Lock()
        self.jobs = ScheduledJobs(self.factory, self.clock, settings, self.client)

    # -- start and stop ----------------------------------------------------------

    def start(self) -> None:
        self.http = HttpServer(self._router(), self.settings.http_host, self.settings.http_port)
        self.http.start()
        if self.settings.metrics_port is not None:
            metrics_only = Router()
            metrics_only.add("/metrics", metrics_endpoint(self.metrics, self.settings.metrics_token))
            self.metrics_http = HttpServer(metrics_only, self.settings.http_host, self.settings.metrics_port)
            self.metrics_http.start()
        # In the background: the first permission check would otherwise wait for Slack.
        self.access.warm()
        if self.settings.socket_mode:
            # slack_sdk's built-in client notices a socket cut without a closing handshake only
            # when its pings go unanswered (about five of them): every 2 s, not Bolt's 10 s, so
            # the bot is back within seconds instead of most of a minute.
            self.socket_mode = SocketModeHandler(
                self.bolt, self.settings.slack_app_token, ping_interval=SOCKET_PING_SECONDS
            )
            try:
                self.socket_mode.connect()
            except SlackApiError as exc:
                error = exc.response.get("error") if isinstance(exc.response.data, dict) else None
                if error in _REFUSED_TOKEN:
                    self.http.stop()
                    raise ConfigError(f"SLACK_APP_TOKEN was refused by Slack ({error})") from None
                raise
        self.leadership.start()
        mode = (
            "Socket Mode" if self.settings.socket_mode else f"HTTP, Slack events at {self.url}/slack/events"
        )
        log.info("supportbot started (%s); health at %s/healthz", mode, self.url)

    @property
    def url(self) -> str:
        assert self.http is not None
        return f"http://{self.http.host}:{self.http.port}"

    def stop(self) -> None:
        log.info("supportbot stopping")
        self.leadership.stop()
        if self.socket_mode is not None:
            try:
                self.socket_mode.close()
            except Exception:
                log.exception("closing the Socket Mode connection failed")
        for server in (self.http, self.metrics_http):
            if server is not None:
                server.stop()
        self.engine.dispose()

    # -- leader duties -----------------------------------------------------------

    def _become_leader(self) -> None:
        with self._duties_lock:
            # Whatever a failed start or stop left running goes first: two watchers or two
            # outbox workers in one process would ingest and post side by side.
            self._stop_duties()
            s = self.settings
            self.watcher = MailboxWatcher(
                MailboxSettings(
                    host=s.imap_host,
                    port=s.imap_port,
                    user=s.imap_user,
                    password=s.imap_password,
                    ssl=s.imap_ssl,
                    folder=s.imap_folder,
                    channel=s.support_channel,
                    own_addresses=(s.support_address,),
                    idle_seconds=s.imap_idle_seconds,
                    poll_seconds=s.imap_poll_seconds,
                    burst_threshold=s.burst_threshold,
                    token_source=self.mail_tokens,
                ),
                self.factory,
                self.clock,
                burst_notice=burst_post,
                on_ingested=self.metrics.mails_stored,
                health=HealthReporter(Service.MAILBOX, s, self.factory, self.clock),
            )
            smtp = smtp_handlers(
                s,
                self.factory,
                self.clock,
                write_notice=reply_notice,
                health=HealthReporter(Service.OUTGOING_MAIL, s, self.factory, self.clock),
                token_source=self.mail_tokens,
            )
            observer = DeliveryMetrics(self.metrics, self.clock)
            self.workers = [
                OutboxWorker(
                    self.factory,
                    slack_handlers(self.client, self.factory, s),
                    lane_prefix="slack:",
                    clock=self.clock,
                    pace_seconds=s.slack_pace_seconds,
                    backoff=Backoff(base=1.0, cap=60.0),
                    observer=observer,
                ),
                # Uploads in a thread of their own: one can take seconds, and posts must not wait.
                OutboxWorker(
                    self.factory,
                    slack_handlers(self.client, self.factory, s),
                    lane_prefix=FILES_LANE_PREFIX,
                    clock=self.clock,
                    pace_seconds=s.slack_pace_seconds,
                    backoff=Backoff(base=1.0, cap=60.0),
                    on_dead=attachment_refused(self.factory, self.clock),
                    observer=observer,
                ),
                OutboxWorker(
                    self.factory,
                    smtp,
                    lane_prefix="smtp",
                    clock=self.clock,
                    # A mail server that is down stays down for minutes; retry patiently.
                    backoff=Backoff(base=2.0, cap=300.0),
                    on_dead=smtp[SMTP_SEND].on_dead,  # type: ignore[attr-defined]
                    observer=observer,
                ),
            ]
            # An erasure's mailbox step: an IMAP session of its own, apart from the watcher's.
            self.workers.append(
                OutboxWorker(
                    self.factory,
                    mailbox_erase_handlers(s, self.factory, self.mail_tokens),
                    lane_prefix=IMAP_LANE_PREFIX,
                    clock=self.clock,
                    backoff=Backoff(base=2.0, cap=300.0),
                    observer=observer,
                )
            )
            if s.phone is not None and s.phone.twilio is not None:
                # Calls and SMS in a thread of their own: a call must not wait behind Slack's pacing.
                self.workers.append(
                    OutboxWorker(
                        self.factory,
                        phone_handlers(s, self.factory, self.clock),
                        lane_prefix=PHONE_LANE_PREFIX,
                        clock=self.clock,
                        backoff=Backoff(base=2.0, cap=120.0),
                        observer=observer,
                    )
                )
            for worker in self.workers:
                worker.start()
            self.watcher.start()
            self.triage = TriageWorker(self.factory, s, self.clock, page=pager(s))
            self.triage.start()
            self.scheduler = make_scheduler()
            install_standard_jobs(self.scheduler, self.jobs)
            self.scheduler.start()

    def _stop_leading(self) -> None:
        with self._duties_lock:
            self._stop_duties()

    def _stop_duties(self) -> None:
        if self.scheduler is not None:
            scheduler, self.scheduler = self.scheduler, None
            try:
                scheduler.shutdown(wait=False)
            except Exception:
                # A scheduler whose start failed (the database went away meanwhile) may not
                # shut down cleanly; the duties below must stop all the same, or the next
                # election would start a second watcher and outbox beside them.
                log.exception("stopping the scheduler failed")
        # Stopped side by side: each may take up to its join timeout (an IMAP connect
        # cannot be interrupted), and SIGTERM must not wait for the sum of them.
        duties: list[Any] = [
            *self.workers,
            *([self.watcher] if self.watcher else []),
            *([self.triage] if self.triage else []),
        ]
        stoppers = [threading.Thread(target=duty.stop, name="stop-duty") for duty in duties]
        for stopper in stoppers:
            stopper.start()
        for stopper in stoppers:
            stopper.join()
        self.watcher = None
        self.triage = None
        self.workers = []

    # -- HTTP ----------------------------------------------------------------------

    def _router(self) -> Router:
        router = Router()
        router.add("/healthz", self._healthz)
        if self.settings.metrics_port is None:
            router.add("/metrics", metrics_endpoint(self.metrics, self.settings.metrics_token))
        router.add_prefix("/ical/", ical_app(self.factory, self.clock, self.settings))
        router.add_prefix("/survey/", survey_app(self.factory, self.clock, self.settings))
        if self.settings.phone is not None and self.settings.phone.twilio is not None:
            router.add_prefix("/twilio/", twilio_app(self.factory, self.clock, self.settings))
        if not self.settings.socket_mode:
            router.add(
                "/slack/events",
                SlackGate(SlackRequestHandler(self.bolt), self.settings.slack_signing_secret, self.factory),
            )
        return router

    def _healthz(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        body: dict[str, Any] = {
            "leader": self.leadership.is_leader,
            "mailbox_connected": bool(self.watcher and self.watcher.connected.is_set()),
        }
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            body["database"] = "ok"
            body["outbox"] = outbox_stats(self.factory, self.clock.now())
            body["status"] = "ok"
            return json_response(start_response, "200 OK", body)
        except Exception as exc:
            body["database"] = f"unreachable: {type(exc).__name__}"
            body["status"] = "degraded"
            return json_response(start_response, "503 Service Unavailable", body)


def prepare_database(settings: Settings) -> None:
    upgrade(settings.database_url)
