"""Prometheus metrics: one registry per process, built by the composition root (bot/app.py).

Two kinds of figure. Events are counted where their effect is recorded, through the
`Metrics` object the root hands out: a mail stored (after its commit), an outbox row
delivered, retried or set aside, a listener's acknowledgement. State is read at scrape
time (`StateCollector`): leadership, the mailbox connection, the outbox backlog per lane,
pages and surveys from the database, so those figures survive restarts and agree
between replicas.

Labels are bounded: an outbox kind (a constant of bot/outbox/queue.py), a lane of a
configured channel (every direct-message lane counts as "dm"), a listener's registered
action, view or command id. Never a ticket id, an address or a user.
"""

from __future__ import annotations

import hmac
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from slack_bolt import App
from slack_bolt.request import BoltRequest
from slack_bolt.response import BoltResponse
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from bot.answer_first import FirstAck, PendingAnswers
from bot.clock import Clock
from bot.outbox.queue import FILES_LANE_PREFIX, SLACK_TICKET_POST
from bot.storage.models import OutboxItem, Page, PageAttempt, Survey
from bot.tickets.prepared_mail import IngestResult

log = logging.getLogger(__name__)

# Slack retries a request not acknowledged within 3 s: the buckets close in on that.
ACK_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0)
# From seconds (a healthy outbox) to an hour (a Slack outage).
DELAY_BUCKETS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0)
# People wake in minutes, not seconds.
PAGE_ACK_BUCKETS = (30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0)
OTHER = "other"


class Metrics:
    """The process's registry and the event counters the root hands to its parts."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.mails_ingested = Counter(
            "supportbot_mails_ingested",
            "Mails stored from the mailbox, by what they became (duplicates not counted)",
            ["outcome"],
            registry=r,
        )
        self.mail_to_slack = Histogram(
            "supportbot_mail_to_slack_delay_seconds",
            "From a mail being stored to its ticket's post in Slack",
            buckets=DELAY_BUCKETS,
            registry=r,
        )
        self.deliveries = Counter(
            "supportbot_outbox_deliveries", "Outbox rows delivered, by kind", ["kind"], registry=r
        )
        self.retries = Counter(
            "supportbot_outbox_retries",
            "Outbox delivery tries that failed and will be retried, by kind",
            ["kind"],
            registry=r,
        )
        self.dead = Counter(
            "supportbot_outbox_failed",
            "Outbox rows set aside as undeliverable, by kind",
            ["kind"],
            registry=r,
        )
        self.ack_latency = Histogram(
            "supportbot_listener_ack_seconds",
            "From a Slack request reaching its listener's middleware to the listener's ack()",
            ["listener"],
            buckets=ACK_BUCKETS,
            registry=r,
        )
        self.smtp_connected = Gauge(
            "supportbot_smtp_connected",
            "1 when the last send reached the mail server, 0 when it failed (NaN before the first)",
            registry=r,
        )
        # Unknown until something is sent: NaN keeps an `== 0` alert quiet after a restart.
        self.smtp_connected.set(math.nan)

    # -- event hooks -------------------------------------------------------------------

    def mails_stored(self, results: Sequence[IngestResult]) -> None:
        """The mailbox watcher's hook, called after the batch committed."""
        for result in results:
            if result.outcome != "duplicate":
                self.mails_ingested.labels(result.outcome).inc()

    def outbox_outcome(self, item: OutboxItem, outcome: str, now_seconds: float) -> None:
        """The outbox worker's hook: `outcome` is delivered, retry or dead."""
        if outcome == "delivered":
            self.deliveries.labels(item.kind).inc()
            if item.kind == SLACK_TICKET_POST:
                self.mail_to_slack.observe(max(0.0, now_seconds - item.created_at.timestamp()))
        elif outcome == "retry":
            self.retries.labels(item.kind).inc()
        else:
            self.dead.labels(item.kind).inc()
        if item.lane.startswith("smtp"):
            self.smtp_connected.set(1 if outcome == "delivered" else 0)

    def acknowledged(self, listener: str, seconds: float) -> None:
        self.ack_latency.labels(listener).observe(seconds)

    def scrape(self) -> bytes:
        return generate_latest(self.registry)


class DeliveryMetrics:
    """What an outbox worker is handed: the metrics and the clock delays are read on."""

    def __init__(self, metrics: Metrics, clock: Clock) -> None:
        self.metrics = metrics
        self.clock = clock

    def observe(self, item: OutboxItem, outcome: str) -> None:
        self.metrics.outbox_outcome(item, outcome, self.clock.now().timestamp())


# -- state read at scrape time ---------------------------------------------------------


def lane_label(lane: str, channels: frozenset[str]) -> str:
    """A bounded label for an outbox lane: the lane of a configured channel as it is,
    "smtp", every direct message (a lane per person) as "dm", every phone number's lane as
    "phone", anything else "other"."""
    if lane.startswith("smtp"):
        return "smtp"
    if lane.startswith("phone:"):
        return "phone"
    target = lane.removeprefix(FILES_LANE_PREFIX).removeprefix("slack:").removesuffix(":updates")
    if target in channels:
        return lane
    if target[:1] in ("U", "W", "D"):
        return "dm"
    return OTHER


class StateCollector(Collector):
    """Figures read when Prometheus scrapes: cheap queries on indexed columns."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        clock: Clock,
        channels: Iterable[str],
        is_leader: Callable[[], bool],
        imap_connected: Callable[[], bool],
    ) -> None:
        self.factory = factory
        self.clock = clock
        self.channels = frozenset(channels)
        self.is_leader = is_leader
        self.imap_connected = imap_connected

    def collect(self) -> Iterator[Any]:
        yield GaugeMetricFamily(
            "supportbot_leader",
            "1 on the replica that runs the mailbox, outbox and scheduler",
            float(self.is_leader()),
        )
        yield GaugeMetricFamily(
            "supportbot_imap_connected",
            "1 while the leader holds a connection to the support mailbox",
            float(self.imap_connected()),
        )
        try:
            yield from self._from_database()
        except Exception as exc:
            # A scrape during a database outage still reports the figures above; the
            # database's own state is /healthz's business.
            log.warning("metrics: cannot read the database (%s)", type(exc).__name__)

    def _from_database(self) -> Iterator[Any]:
        with self.factory() as session:
            lanes = session.execute(
                select(OutboxItem.lane, OutboxItem.status, func.count())
                .where(OutboxItem.status.in_(("pending", "dead")))
                .group_by(OutboxItem.lane, OutboxItem.status)
            ).all()
            pages_sent = session.scalar(select(func.count()).select_from(PageAttempt)) or 0
            acknowledged = session.execute(
                select(Page.started_at, Page.acknowledged_at).where(Page.acknowledged_at.is_not(None))
            ).all()
            surveys_sent = session.scalar(select(func.count()).where(Survey.sent_at.is_not(None))) or 0
            surveys_answered = (
                session.scalar(select(func.count()).where(Survey.answered_at.is_not(None))) or 0
            )
        backlog = GaugeMetricFamily(
            "supportbot_outbox_backlog", "Outbox rows waiting to be delivered, per lane", labels=["lane"]
        )
        failed = GaugeMetricFamily(
            "supportbot_outbox_failed_items",
            "Outbox rows set aside as undeliverable, per lane",
            labels=["lane"],
        )
        sums: dict[tuple[str, str], int] = {}
        for lane, status, count in lanes:
            key = (status, lane_label(lane, self.channels))
            sums[key] = sums.get(key, 0) + int(count)
        for (status, label), count in sorted(sums.items()):
            (backlog if status == "pending" else failed).add_metric([label], count)
        yield backlog
        yield failed
        yield CounterMetricFamily("supportbot_pages_sent", "Page messages sent to people", pages_sent)
        yield _histogram(
            "supportbot_page_acknowledge_seconds",
            "From a page starting to someone acknowledging it",
            [(ack - start).total_seconds() for start, ack in acknowledged],
            PAGE_ACK_BUCKETS,
        )
        yield CounterMetricFamily("supportbot_surveys_sent", "Satisfaction surveys mailed", surveys_sent)
        yield CounterMetricFamily(
            "supportbot_surveys_answered", "Satisfaction surveys answered", surveys_answered
        )


def _histogram(name: str, documentation: str, values: list[float], buckets: Sequence[float]) -> Any:
    cumulative = [(str(bound), sum(1 for v in values if v <= bound)) for bound in buckets]
    cumulative.append(("+Inf", len(values)))
    return HistogramMetricFamily(name, documentation, buckets=cumulative, sum_value=sum(values))


# -- Slack listeners -------------------------------------------------------------------


class MeasuredApp(App):
    """Bolt's App, noting the ids listeners are registered for: the bounded set of
    `listener` label values (an id Slack sends that no listener has is "other"), and
    counting the requests waiting for their answer (`bot.answer_first`)."""

    def __init__(self, *args: Any, pending: PendingAnswers | None = None, **kwargs: Any) -> None:
        self.listener_ids: set[str] = set()
        self.pending = pending or PendingAnswers()
        super().__init__(*args, **kwargs)

    def dispatch(self, req: BoltRequest) -> BoltResponse:
        # Over HTTP and Socket Mode alike: from here until ack() (or the end, for events
        # Bolt acknowledges itself) this request waits for its answer.
        with self.pending.request() as waiting:
            req.context["ack"] = FirstAck(waiting, self.pending)
            return super().dispatch(req)

    def _note(self, constraints: Any) -> None:
        if isinstance(constraints, str):
            self.listener_ids.add(constraints)

    def action(self, constraints: Any, *args: Any, **kwargs: Any) -> Any:
        self._note(constraints)
        return super().action(constraints, *args, **kwargs)

    def view(self, constraints: Any, *args: Any, **kwargs: Any) -> Any:
        self._note(constraints)
        return super().view(constraints, *args, **kwargs)

    def command(self, command: Any, *args: Any, **kwargs: Any) -> Any:
        self._note(command)
        return super().command(command, *args, **kwargs)

    def shortcut(self, constraints: Any, *args: Any, **kwargs: Any) -> Any:
        self._note(constraints)
        return super().shortcut(constraints, *args, **kwargs)


def listener_id(body: dict[str, Any]) -> str | None:
    """The action, view, shortcut or command id a Slack request is for."""
    if isinstance(body.get("command"), str):
        return str(body["command"])
    actions = body.get("actions")
    if isinstance(actions, list) and actions and isinstance(actions[0], dict):
        return str(actions[0].get("action_id"))
    view = body.get("view")
    if str(body.get("type") or "").startswith("view_") and isinstance(view, dict):
        return str(view.get("callback_id"))
    if isinstance(body.get("callback_id"), str):
        return str(body["callback_id"])
    return None


def ack_timer(metrics: Metrics, app: MeasuredApp) -> Callable[..., Any]:
    """Bolt middleware timing each listener's ack(), labelled by the listener's id."""

    def middleware(body: dict[str, Any], context: Any, next: Callable[[], Any]) -> Any:
        found = listener_id(body) if isinstance(body, dict) else None
        if found is None:
            return next()  # events are acknowledged by Bolt itself
        label = found if found in app.listener_ids else OTHER
        started = time.monotonic()
        ack = context.get("ack")
        if not isinstance(ack, FirstAck):
            ack = context["ack"] = FirstAck()
        ack.on_first.append(lambda: metrics.acknowledged(label, time.monotonic() - started))
        return next()

    return middleware


# -- the endpoint -----------------------------------------------------------------------


def metrics_endpoint(metrics: Metrics, token: str | None) -> Callable[..., list[bytes]]:
    """The WSGI app of /metrics; with a token, only `Authorization: Bearer <token>` is served."""
    expected = f"Bearer {token}".encode() if token else None

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        if expected is not None:
            given = str(environ.get("HTTP_AUTHORIZATION") or "").encode("utf-8", "surrogateescape")
            if not hmac.compare_digest(given, expected):
                body = b"a bearer token is required\n"
                start_response(
                    "401 Unauthorized",
                    [
                        ("WWW-Authenticate", 'Bearer realm="metrics"'),
                        ("Content-Type", "text/plain"),
                        ("Content-Length", str(len(body))),
                    ],
                )
                return [body]
        data = metrics.scrape()
        start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST), ("Content-Length", str(len(data)))])
        return [data]

    return app
