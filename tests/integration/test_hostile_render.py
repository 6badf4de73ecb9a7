"""Hostile text in every field we render: mrkdwn stays inert and Block Kit stays within
Slack's limits, whatever an email, a colleague or Slack itself hands us.

Outside text is whatever the bot did not write itself: an email's subject, sender,
address, body and file names; what staff type (tags, notes, template names and
bodies, rule patterns, reasons); people's Slack names. Every hostile string carries
`MARKER` (tests/support/block_kit.py), so our own mentions (`<@U…>` of staff, date
tokens) are told apart from injected ones by construction.

A renderer that breaks a limit makes Slack refuse the post with `invalid_blocks`, and
the outbox would retry it forever: so lengths run up to far past every limit.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session, sessionmaker

from bot.slack import after_hours, lists, modals, oncall, render
from bot.slack import stats as stats_ui
from bot.slack.survey_notices import answer_notice
from bot.stats.figures import Durations, OnCall, Spread, TagTrend
from bot.stats.period import Period
from bot.stats.queries import SurveyComment
from bot.stats.report import PersonFigures, StatsReport, TemplateFigures
from bot.tickets.automation import Automation, TemplateStats
from bot.tickets.queries import TicketLine, Timeline, TimelineEntry
from bot.tickets.spam import BlockedLine, SpamLine
from bot.tickets.survey_answers import COMMENT_LIMIT
from bot.tickets.template_store import save_template
from bot.tickets.template_vars import sample_variables
from bot.tickets.templates import TemplateError, render_source
from bot.tickets.urgency import Rule
from bot.tickets.views import AttachmentInfo, MessageCard, TicketCard
from rota.ledger import LineView
from rota.store import DutyView, MemberView, TimeOffView
from rota.swaps import SwapView
from tests.support.block_kit import (
    HOSTILE_FRAGMENTS,
    MARKER,
    assert_safe_blocks,
    assert_safe_message,
    assert_safe_view,
    injection_problems,
)

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
TZ = ZoneInfo("Europe/Rome")
STAFF = "U0ADA"  # our own mentions: never carry the marker

# Renderers are pure functions: many examples are cheap.
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _hostile_piece() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(HOSTILE_FRAGMENTS), st.text(max_size=12), st.just(MARKER))


# Short hostile strings, and the same repeated far past every Slack limit (60,000 characters).
HOSTILE = st.one_of(
    st.lists(_hostile_piece(), min_size=1, max_size=8).map("".join),
    st.tuples(st.lists(_hostile_piece(), min_size=1, max_size=4).map("".join), st.integers(1, 6000)).map(
        lambda pair: (pair[0] + MARKER) * pair[1]
    ),
)
SHORT = st.lists(_hostile_piece(), min_size=1, max_size=6).map("".join)
MANY = st.integers(0, 130)  # past 50 blocks, 100 options, 10 fields


def _ticket_card(subject: str, name: str, email: str, body: str, extra: str, count: int) -> TicketCard:
    return TicketCard(
        id=7,
        number=123,
        subject=subject,
        customer_name=name,
        customer_email=email,
        status="claimed",
        owner=STAFF,
        created_at=NOW,
        snippet=body,
        attachments=tuple(AttachmentInfo(f"{extra}{i}.pdf", i * 1000) for i in range(count)),
        tags=tuple(f"{extra}{i}" for i in range(count)),
        auto_reason=extra,
        malformed=count % 2 == 0,
        parse_error=extra,
        message_count=count,
        urgent_reason=f"keyword “{extra}” in the subject",
    )


# -- ticket messages and their threads -------------------------------------------------------


@FAST
@given(subject=HOSTILE, name=HOSTILE, email=HOSTILE, body=HOSTILE, extra=HOSTILE, count=MANY)
def test_a_ticket_message_is_inert_and_within_limits(
    subject: str, name: str, email: str, body: str, extra: str, count: int
) -> None:
    card = _ticket_card(subject, name, email, body, extra, count)
    text, blocks = render.ticket_message(card)
    assert_safe_message(text, blocks, render.ticket_metadata(card, 99))
    assert f"<@{STAFF}>" in json.dumps(blocks), "our own mention of the owner stays a mention"


@FAST
@given(name=HOSTILE, address=HOSTILE, body=HOSTILE, extra=HOSTILE, count=MANY, inbound=st.booleans())
def test_a_thread_message_is_inert_and_within_limits(
    name: str, address: str, body: str, extra: str, count: int, inbound: bool
) -> None:
    card = MessageCard(
        id=1,
        ticket_id=7,
        ticket_number=123,
        direction="in" if inbound else "out",
        from_name=name,
        from_address=address,
        author=None if inbound else STAFF,
        at=NOW,
        subject=extra,
        text=body,
        attachments=tuple(AttachmentInfo(f"{extra}{i}", i) for i in range(count)),
        auto_reason=extra if inbound else None,
        parse_error=None,
    )
    text, blocks = render.thread_message(card)
    assert_safe_message(text, blocks, render.message_metadata(card, 99))


# -- modals ------------------------------------------------------------------------------------


@FAST
@given(customer=HOSTILE, subject=HOSTILE, last=HOSTILE, body=HOSTILE, error=HOSTILE, title=SHORT, count=MANY)
def test_the_reply_modal_is_inert_and_within_limits(
    customer: str, subject: str, last: str, body: str, error: str, title: str, count: int
) -> None:
    templates = [
        modals.TemplateChoice(f"t{i}.{'en' if i % 3 else 'it'}", title * (i % 5 + 1), "en" if i % 3 else "it")
        for i in range(count)
    ]
    view = modals.reply_modal(
        ticket_id=7,
        number=123456789,
        customer=customer,
        subject=subject,
        last_message=last,
        templates=templates,
        body=body,
        revision=3,
        template=templates[-1].name if templates else None,
        error=error,
    )
    assert_safe_view(view)


@FAST
@given(tag=SHORT, count=MANY)
def test_the_tags_modal_is_within_limits(tag: str, count: int) -> None:
    known = [f"{tag}{i}" for i in range(count)]
    view = modals.tags_modal(ticket_id=7, number=123456789, known=known, current=known[::2])
    assert_safe_view(view)


# Template names are checked on save and on load: lowercase, digits, '.', '-', '_', at most 120.
NAMES = st.from_regex(r"[a-z0-9][a-z0-9_.\-]{0,119}", fullmatch=True)


@FAST
@given(name=NAMES, title=HOSTILE, text=HOSTILE, html=HOSTILE, tag=SHORT)
def test_the_template_editor_is_within_limits(name: str, title: str, text: str, html: str, tag: str) -> None:
    draft = modals.TemplateDraft(name, title, "en", (tag,) * 50, text, html)
    for editing in (True, False):
        assert_safe_view(modals.template_editor(draft, editing=editing))
    assert_safe_view(modals.reassign_modal(ticket_id=7, number=123456789, owner=STAFF))


# -- lists, timelines, App Home, templates ------------------------------------------------------


def _line(i: int, subject: str, customer: str) -> TicketLine:
    return TicketLine(i, i, subject, customer, "open", STAFF if i % 2 else None, NOW, "C0SUPPORT", "1.000100")


@FAST
@given(subject=HOSTILE, customer=HOSTILE, count=MANY)
def test_ticket_lists_and_app_home_are_inert_and_within_limits(
    subject: str, customer: str, count: int
) -> None:
    lines = [_line(i, subject, customer) for i in range(count)]
    assert_safe_blocks(
        lists.ticket_lines("Open", lines, NOW, empty="None.", team_url="https://x.slack.com/"), "message"
    )
    view = lists.home_view(user=STAFF, mine=lines, queue=lines, waiting=count, now=NOW)
    assert_safe_view(view)


@FAST
@given(subject=HOSTILE, name=HOSTILE, email=HOSTILE, body=HOSTILE, extra=HOSTILE, count=MANY)
def test_a_spam_card_is_inert_and_within_limits(
    subject: str, name: str, email: str, body: str, extra: str, count: int
) -> None:
    card = _ticket_card(subject, name, email, body, extra, count)
    for marker in (STAFF, "system", None):
        spam_card = dataclasses.replace(card, status="spam", owner=None, spam_by=marker)
        text, blocks = render.ticket_message(spam_card)
        assert_safe_message(text, blocks, render.ticket_metadata(spam_card, 99))
        assert "ticket_not_spam" in json.dumps(blocks)
    # The overflow of a full card, with Mark as spam, stays within Slack's five options.
    for status, owner in (("claimed", STAFF), ("waiting", STAFF), ("open", None), ("resolved", STAFF)):
        _, blocks = render.ticket_message(dataclasses.replace(card, status=status, owner=owner))
        menu = next(
            e for b in blocks if b["type"] == "actions" for e in b["elements"] if e["type"] == "overflow"
        )
        assert 0 < len(menu["options"]) <= 5 and menu["options"][-1]["value"] == "spam:7"


@FAST
@given(subject=HOSTILE, sender=HOSTILE, value=HOSTILE, count=MANY)
def test_the_spam_list_is_inert_and_within_limits(subject: str, sender: str, value: str, count: int) -> None:
    spam_lines = [SpamLine(i, i, subject, sender, NOW, STAFF if i % 2 else "system") for i in range(count)]
    blocked = [
        BlockedLine("domain" if i % 3 == 0 else "address", value, STAFF, NOW, i if i % 2 else None)
        for i in range(count * 2)
    ]
    assert_safe_blocks(lists.spam_list(spam_lines, blocked), "message")
    assert_safe_blocks(lists.spam_list([], []), "message")


@FAST
@given(subject=HOSTILE, customer=HOSTILE, value=HOSTILE, count=MANY)
def test_a_timeline_is_inert_and_within_limits(subject: str, customer: str, value: str, count: int) -> None:
    actions: list[tuple[str, str, dict[str, Any]]] = [
        (f"customer:{value}", "ticket_created", {}),
        (STAFF, "tagged", {"added": [value, value], "removed": [value]}),
        (STAFF, "replied", {"template": value, "automatic": True}),
        (STAFF, "replied", {"to": value, "cc": [value] * 5, "template": value}),
        ("system", "reply_delivered", {"to": value, "cc_refused": {value: value, value + "x": value}}),
        ("system", "triaged", {"urgent": True, "after_hours": True, "reason": value}),
        ("auto", "auto_reply_withheld", {"reason": value}),
        (STAFF, value, {}),
        (STAFF, "note_added", {"text": value}),
    ]
    entries = tuple(
        TimelineEntry(NOW + timedelta(minutes=i), *actions[i % len(actions)]) for i in range(count * 4)
    )
    timeline = Timeline(_line(1, subject, customer), entries)
    assert_safe_blocks(lists.timeline_blocks(timeline), "message")


class _Template:
    def __init__(self, i: int, text: str, title: str, tag: str) -> None:
        self.name = f"{tag}{i}"
        self.title = title
        self.language = tag
        self.tags = (tag,) * 10
        self.version = i
        self.source = "db"
        self.text = text
        self.html = text if i % 2 else None


@FAST
@given(text=HOSTILE, title=HOSTILE, tag=SHORT, count=MANY)
def test_template_lists_and_previews_are_inert_and_within_limits(
    text: str, title: str, tag: str, count: int
) -> None:
    templates = [_Template(i, text, title, tag) for i in range(count)]
    assert_safe_blocks(lists.template_list(templates), "message")
    for template in templates[:3]:
        assert_safe_blocks(lists.template_preview(template), "message")


# -- after hours: rules and automation ------------------------------------------------------------


@FAST
@given(pattern=HOSTILE, note=HOSTILE, count=MANY)
def test_urgency_rules_are_inert_and_within_limits(pattern: str, note: str, count: int) -> None:
    kinds = ("keyword", "sender", "domain", "tag")
    rules = [Rule(i, i + 1, kinds[i % 4], pattern, bool(i % 2), note) for i in range(count)]  # type: ignore[arg-type]
    assert_safe_blocks(after_hours.rules_blocks(rules), "message")


@FAST
@given(name=NAMES, pattern=HOSTILE, count=MANY)
def test_automation_views_are_inert_and_within_limits(name: str, pattern: str, count: int) -> None:
    stats = [TemplateStats(f"{name}{i}", 10, 9, 0.9) for i in range(count)]
    automated = [
        Automation(f"{name}{i}", "always", "keyword" if i % 2 else "tag", pattern, STAFF, NOW)  # type: ignore[arg-type]
        for i in range(0, count * 2, 2)
    ]
    assert_safe_blocks(
        after_hours.automation_blocks(stats, automated, min_uses=5, min_rate=0.5, days=7), "message"
    )
    current = automated[0] if automated else None
    assert_safe_view(after_hours.automation_modal(name, stats[0] if stats else None, current))


# -- stats --------------------------------------------------------------------------------------


def _report(comment: str, name: str, count: int) -> StatsReport:
    spread = Spread(count, 60.0, 120.0)
    durations = Durations(spread, spread)
    people = {
        f"U0P{i}": PersonFigures(
            f"U0P{i}",
            handled=i,
            replies=i,
            answered=1,
            solved=1,
            on_call=OnCall(duties=1, hours=10),
            pages=2,
            acknowledged=1,
            ack_median=60,
            balances={name: Decimal("1.5"), "days": Decimal(2)},
        )
        for i in range(count)
    }
    return StatsReport(
        period=Period(date(2026, 11, 1), date(2026, 11, 30), TZ),
        now=NOW,
        volume=[],
        created=count,
        resolved=count,
        reopened=1,
        backlog_start=1,
        backlog_end=2,
        first_response=durations,
        unanswered=0,
        resolution=durations,
        answered=count,
        solved=count,
        comments=[SurveyComment(i, f"U0P{i % 3}", bool(i % 2), comment, NOW) for i in range(count)],
        tags=[TagTrend(f"{name}{i}", i, i // 2) for i in range(count)],
        people=people,
        balance=1.2,
        roster={},
        names={},
        templates=[TemplateFigures(f"{name}{i}", i, i, i, 0.5) for i in range(count)],
    )


@FAST
@given(comment=HOSTILE, name=SHORT, count=MANY)
def test_stats_are_inert_and_within_limits(comment: str, name: str, count: int) -> None:
    report = _report(comment, name, count)
    assert_safe_blocks(stats_ui.team_blocks(report), "message")
    assert_safe_blocks(stats_ui.personal_blocks(report, "U0P1"), "message")
    assert_safe_blocks(stats_ui.home_blocks(report), "home")


# -- on call ---------------------------------------------------------------------------------------


def _duty(i: int, user: str | None = STAFF) -> DutyView:
    start = NOW + timedelta(days=i)
    return DutyView(i, start, start + timedelta(days=1), user, False, "swap" if i % 2 else "plan", "")


@FAST
@given(name=HOSTILE, note=HOSTILE, count=MANY)
def test_oncall_views_are_inert_and_within_limits(name: str, note: str, count: int) -> None:
    members = [MemberView(f"U0M{i}", name, TZ, 0.5 if i % 2 else 1.0, bool(i % 3)) for i in range(count)]
    assert_safe_blocks(oncall.roster_blocks(members), "message")
    ledger = [LineView(i, STAFF, "adjusted", Decimal("0.5"), "days", NOW, note, STAFF) for i in range(count)]
    assert_safe_blocks(oncall.comp_blocks({"days": Decimal(1)}, ledger, TZ, "days"), "message")
    assert_safe_blocks(
        oncall.comp_all_blocks({(f"U0M{i}", "days"): Decimal(i) for i in range(count)}, {"U0M1": name}),
        "message",
    )
    swap = SwapView(3, "swap", _duty(1), STAFF, "U0BOB", "offered", note, NOW + timedelta(days=1), None)
    for text, blocks in (oncall.swap_offer_dm(swap, TZ), oncall.approval_dm(swap, TZ)):
        assert_safe_message(text, blocks)
    requests = [swap] * count
    off = TimeOffView(1, STAFF, date(2026, 12, 1), date(2026, 12, 3), NOW, NOW)
    assert_safe_blocks(
        oncall.me_blocks([_duty(i) for i in range(count)], [off] * count, requests, user=STAFF, tz=TZ),
        "message",
    )
    # The command answers "You hold no upcoming duties" instead of an empty picker.
    assert_safe_view(oncall.swap_modal([_duty(i) for i in range(max(count, 1))], TZ, selected=1))


# -- notices written as plain message text -----------------------------------------------------------


@FAST
@given(comment=HOSTILE, solved=st.booleans(), changed=st.booleans())
def test_a_survey_answer_in_the_thread_is_inert(comment: str, solved: bool, changed: bool) -> None:
    # Comments are stored cut to COMMENT_LIMIT (bot/tickets/survey_answers.py).
    comment = comment[:COMMENT_LIMIT]
    text = answer_notice(solved, changed=changed, fresh=True, comment=comment, agent=STAFF, reopened=True)
    assert_safe_message(text)


def test_the_checks_catch_what_they_are_for() -> None:
    """The checks themselves: each would flag the mistake it exists to catch."""
    assert injection_problems(f"hi <@U{MARKER}>")
    assert injection_problems("<!here>")
    assert injection_problems(f"a & {MARKER}")
    assert not injection_problems(f"{render.escape('<!here> & ' + MARKER)} by <@{STAFF}>")
    with pytest.raises(AssertionError, match="3001 characters"):
        assert_safe_blocks([{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}])
    with pytest.raises(AssertionError, match="empty text"):
        assert_safe_blocks([{"type": "context", "elements": [{"type": "mrkdwn", "text": ""}]}])


# -- the template sandbox: escapes and resource bombs ---------------------------------------------
#
# tests/unit/test_templates.py covers the classic escapes; these are the rest of the known
# SSTI payloads and the bombs that a sandbox without limits lets through. Each must be
# refused with a sentence, quickly, without allocating much: they run in one child
# process whose address space is capped at 1 GiB, so a bomb that got through would
# end as a MemoryError (named in the message, and slow) instead of swapping the machine.

SANDBOX_PAYLOADS = [
    "{{ self._TemplateReference__context }}",
    "{{ self.__dict__ }}",
    "{{ range.__self__ }}",
    "{{ lipsum.__globals__ }}",
    "{{ '{0.__class__}'.format_map({'0': 1}) }}",
    "{{ '%s' % customer_name.__class__ }}",
    "{% for k, v in {'a': 1}.items() %}{{ v.__class__ }}{% endfor %}",
    "{{ dict(a=1).__class__ }}",
    "{{ today.replace.__self__ }}",
    "{% set x = [] %}{{ x.append(x) }}",
    "{% set x = [1] %}{% for i in range(40) %}{{ x.extend(x) }}{% endfor %}",
    "{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}",
    "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(40) }}",
    "{% macro f(s, n) %}{% if n %}{{ f(s ~ s, n - 1) }}{% endif %}{% endmacro %}{{ f('a', 40) }}",
    "{{ [1] * 10**9 }}",
    "{{ customer_name.encode() * 10**9 }}",
    "{% set ns = namespace(s='a') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
    "{% set ns = namespace(s='a') %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
    "{% set ns = namespace(s=[1]) %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
    "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}",
    "{% for i in range(99999) %}{{ 'y' * 99999 }}{% endfor %}",
    "{{ (2 ** 4000) ** 2 }}",
    "{{ 10.0 ** 10000 }}",
    "{{ range(99999)|join('x' * 99999) }}",
    "{{ customer_name|center(10**9) }}",
    "{{ customer_name|indent(10**9) }}",
    "{{ previous_message|wordwrap(1, wrapstring='x' * 99999) }}",
    "{{ ('x' * 50000)|replace('x', 'y' * 50000) }}",
    "{{ 'x'|replace('', 'y' * 99999) }}",
    "{{ '%999999999s'|format(1) }}",
    "{{ '%*s' % (10**9, 'a') }}",
    "{{ '{:>999999999}'.format(1) }}",
    "{{ '{:{}}'.format('a', 10**9) }}",
    "{{ 'a'.ljust(10**9) }}",
    "{{ 'a'.zfill(10**9) }}",
    "{{ 'a'.center(10**9) }}",
    "{{ '\t'.expandtabs(10**9) }}",
    "{{ 'a'.join(range(99999)|map('string')|list) ~ 'b'.join(['y' * 99999] * 3) }}",
    "{{ range(3)|batch(10**9, 'x')|list }}",
    "{{ range(3)|slice(10**9)|list }}",
    "{{ lipsum(10**6) }}",
    "{{ ('9' * 100000)|int ~ 'x' * 99999 ~ 'x' * 99999 }}",
    "{{ '(' * 99999 }}" + "{{" + "(" * 5000 + "1" + ")" * 5000 + "}}",
]

_SANDBOX_CHILD = """
import json, resource, sys, time
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
from datetime import UTC, datetime
from bot.tickets.template_vars import sample_variables
from bot.tickets.templates import TemplateRenderError, render_source
variables = sample_variables(now=datetime(2026, 11, 20, tzinfo=UTC))
out = []
for source in json.load(sys.stdin):
    for part in ("text", "html"):
        started = time.monotonic()
        try:
            render_source(source, variables, part=part)
            result = "rendered"
        except TemplateRenderError as exc:
            result = str(exc)
        except BaseException as exc:
            result = f"ESCAPED {type(exc).__name__}: {exc}"
        out.append([source, part, time.monotonic() - started, result])
# ru_maxrss survives exec: it would report pytest's own size, forked to start us. The
# high-water mark of this process's memory map starts afresh at exec.
try:
    status = open("/proc/self/status").read()
    peak = int(status.split("VmHWM:")[1].split()[0])
except (OSError, IndexError):
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"cases": out, "peak_kib": peak}))
"""


@pytest.mark.timeout(300)
def test_sandbox_escapes_and_bombs_fail_fast_and_small(project_root: Path) -> None:
    import subprocess
    import sys

    child = subprocess.run(
        [sys.executable, "-c", _SANDBOX_CHILD],
        input=json.dumps(SANDBOX_PAYLOADS),
        capture_output=True,
        text=True,
        cwd=project_root,
        timeout=240,
        check=False,
    )
    assert child.returncode == 0, child.stderr[-3000:]
    report = json.loads(child.stdout)
    slow = []
    for source, part, seconds, result in report["cases"]:
        label = "The template's HTML part" if part == "html" else "The template"
        assert result.startswith(label), f"{source!r} ({part}): {result}"
        assert "Error" not in result and "Traceback" not in result, f"{source!r}: {result}"
        # The render deadline is 0.5 s; the rest is headroom for a machine under load.
        if seconds > 3:
            slow.append((round(seconds, 2), source))
    assert not slow, slow
    # Python, SQLAlchemy and the bot's modules take ~100 MB; a bomb that got through would
    # have been stopped by the 1 GiB cap as a MemoryError (caught above).
    assert report["peak_kib"] < 600 * 1024, report["peak_kib"]


@pytest.mark.parametrize(
    "source",
    [
        "{% set ns = namespace(s='a') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
        "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}",
        "{{ customer_name|center(10**9) }}",
        "{{ '{:>999999999}'.format(1) }}",
        "{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}",
    ],
)
def test_bombs_are_refused_when_the_template_is_saved(
    session_factory: sessionmaker[Session], source: str
) -> None:
    with session_factory.begin() as session, pytest.raises(TemplateError) as caught:
        save_template(
            session,
            name="bomb.en",
            title="Bomb",
            language="en",
            tags=[],
            text=f"Hello {{{{ customer_first_name }}}}\n{source}",
            html=None,
            user="U0MAY",
            now=NOW,
        )
    assert caught.value.field == "text" and str(caught.value).startswith("The template")


def test_ordinary_templates_still_render_with_the_limits() -> None:
    source = (
        "{% set ns = namespace(n=0) %}{% for line in previous_message.split('\\n') %}"
        "{% set ns.n = ns.n + 1 %}{{ line|indent(2) }}{% endfor %}"
        "{{ customer_name|center(30) }}|{{ 'a,b'|replace(',', '; ') }}|{{ ['x', 'y']|join(', ') }}|"
        "{{ '%s-%05d'|format('n', ticket_number) }}|{{ '{}:{:>6}'.format('t', ticket_number) }}|"
        "{{ (previous_message ~ ' ') * 3 }}|{{ range(1, 4)|batch(2, '-')|list }}|"
        "{{ customer_first_name + '!' }}|{{ ns.n }}|{{ previous_message|wordwrap(20) }}"
    )
    rendered = render_source(source, sample_variables(now=NOW))
    assert "Maria Rossi" in rendered and "n-00123" in rendered and "t:   123" in rendered
    assert "a; b" in rendered and "x, y" in rendered and "Maria!" in rendered


# -- end to end: a hostile email and hostile commands through the real bot ---------------------------
#
# The Slack stand-in refuses any post or view past a Block Kit limit (`invalid_blocks`, as
# Slack does), and what it was sent is checked for injection here. Slash command answers
# come back in the HTTP response, so they are checked directly.

ADA, MAY = "U0ADA", "U0MAY"  # staff, manager


def _hostile_mail(n: int, *, in_reply_to: str | None = None) -> bytes:
    from email.message import EmailMessage
    from email.utils import format_datetime

    # Headers cannot hold line breaks (a mail client would not send one).
    storm = "".join(f for f in HOSTILE_FRAGMENTS if "\n" not in f) + MARKER
    msg = EmailMessage()
    msg["From"] = f'"{storm * 3}" <evil{n}@example.org>'
    msg["To"] = "support@example.com"
    msg["Subject"] = (storm * 40)[:4000] if in_reply_to is None else f"Re: [#1] {storm}"
    msg["Date"] = format_datetime(NOW + timedelta(minutes=n))
    msg["Message-ID"] = f"<hostile{n}@example.org>"
    if in_reply_to:
        msg["In-Reply-To"] = msg["References"] = in_reply_to
    msg.set_content((storm + "\n") * 400)
    for i in range(14):
        msg.add_attachment(b"x", maintype="application", subtype="pdf", filename=f"{storm[:150]}{i}.pdf")
    return bytes(msg)


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_hostile_email_and_hostile_commands_end_to_end(database_url: str, tmp_path: Path) -> None:
    from bot.sandbox.imap_server import PymapServer
    from bot.sandbox.slack_api import SlackStandIn
    from bot.sandbox.smtp_catcher import SmtpCatcher
    from tests.support.harness import CHANNEL, bot_env, running_bot, wait_until
    from tests.support.slack_requests import SlackUser

    with (
        SlackStandIn(channels=(CHANNEL,)) as slack,
        PymapServer(tmp_path / "imap") as imap,
        SmtpCatcher() as smtp,
    ):
        slack.add_user(ADA, "ada", "Ada <!channel> " + MARKER, channels=(CHANNEL,))
        slack.add_user(MAY, "may", "May Manager", channels=(CHANNEL,))
        env = bot_env(
            slack_url=slack.base_url, imap=imap, database_url=database_url, smtp_port=smtp.port, MANAGERS=MAY
        )
        with running_bot(env) as bot:
            ada, may = SlackUser(bot.url, slack, ADA), SlackUser(bot.url, slack, MAY)
            imap.append(_hostile_mail(1))

            def ticket() -> dict[str, Any] | None:
                found = [
                    m
                    for m in slack.messages(CHANNEL)
                    if (m.get("metadata") or {}).get("event_type") == render.TICKET_EVENT_TYPE
                ]
                return {**found[0], "channel": CHANNEL} if found else None

            message = wait_until(ticket, timeout=60, what="the ticket message")
            assert_safe_message(message["text"], message["blocks"], message["metadata"])

            imap.append(_hostile_mail(2, in_reply_to="<hostile1@example.org>"))
            thread = wait_until(
                lambda: (r := slack.thread(CHANNEL, message["ts"])[1:]) and r,
                timeout=60,
                what="the follow-up in the thread",
            )
            for reply in thread:
                assert_safe_message(reply["text"], reply.get("blocks"), reply.get("metadata"))

            ada.click(message, "ticket_reply")
            modal = wait_until(lambda: slack.open_modal(ADA), what="the reply modal")
            assert_safe_view(modal)
            ada.click(message, "ticket_claim")
            ada.open_home()
            home = wait_until(lambda: slack.home.get(ADA), what="App Home")
            assert_safe_view(home)

            storm = "".join(f for f in HOSTILE_FRAGMENTS if "\n" not in f) + MARKER
            answers = [
                ada.command("ticket 1"),
                ada.command("open"),
                ada.command("mine"),
                ada.command(f"customer {storm}"),
                ada.command(f"templates {storm}"),
                ada.command(f"{storm} {storm}"),
                ada.command(f"claim {storm}"),
                may.command(f'rules add keyword "{storm}" urgent'),
                may.command(f"rules add domain {storm}"),
                may.command(f"rules remove {storm}"),
                may.command("rules"),
                may.command(f"automation off {storm}"),
                may.command(f"template edit {storm}"),
            ]
            for answer in answers:
                assert answer.status == 200
                body = answer.json()
                assert_safe_message(body.get("text"), body.get("blocks"))
            for told in slack.ephemerals():
                assert_safe_message(told["text"], told.get("blocks"))
        assert slack.invalid == [], slack.invalid
