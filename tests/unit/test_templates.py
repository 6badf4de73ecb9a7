"""Reply templates: the shipped files, the sandbox, and versions saved from Slack."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.storage.models import Event, TemplateVersion, Ticket
from bot.tickets.ingest import ingest_email
from bot.tickets.template_store import get_template, list_templates, save_template, template_history
from bot.tickets.template_vars import (
    PURPOSE_VARIABLES,
    VARIABLES,
    first_name,
    reply_variables,
    sample_variables,
)
from bot.tickets.templates import (
    ReplyTemplate,
    TemplateError,
    TemplateNotFound,
    TemplateRenderError,
    render_source,
    render_template,
)
from tests.support.mail import customer_mail

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
STARTER_TOPICS = ("acknowledgement", "password_reset", "refund_request", "more_information", "resolved")
MANAGER = "UMANAGER1"


def _template(text: str, html: str | None = None) -> ReplyTemplate:
    return ReplyTemplate(name="t", title="T", language="en", tags=(), text=text, html=html, source="file")


def _save(
    session: Session, name: str = "password_reset.en", text: str = "Hello {{ customer_name }}", **kw: object
):
    args: dict[str, object] = {
        "name": name,
        "title": "Password help",
        "language": "en",
        "tags": ["account"],
        "text": text,
        "html": None,
        "user": MANAGER,
        "now": NOW,
    }
    args.update(kw)
    return save_template(session, **args)  # type: ignore[arg-type]


# -- the shipped starter templates ---------------------------------------------------------


def test_every_starter_topic_ships_in_english_and_italian() -> None:
    names = {p.name.removesuffix(".txt") for p in TEMPLATES.glob("*.txt")}
    for topic in STARTER_TOPICS:
        assert {f"{topic}.en", f"{topic}.it"} <= names


def test_every_starter_template_loads_and_renders_with_every_variable_it_uses(
    session_factory: sessionmaker[Session],
) -> None:
    with session_factory() as session:
        found = list_templates(session, TEMPLATES)
    assert len(found) >= 2 * len(STARTER_TOPICS)
    assert any(t.html for t in found), "at least one starter has an HTML alternative"
    for template in found:
        assert template.source == "file" and template.version is None
        assert template.title and template.title != template.name
        assert template.language == template.name.rsplit(".", 1)[1]
        rendered = render_template(template, sample_variables(now=NOW))
        assert "Maria" in rendered.text and "Alex Example" in rendered.text
        assert "{{" not in rendered.text and "{%" not in rendered.text
        if template.html:
            assert rendered.html is not None and "Alex Example" in rendered.html
    # Grouped by language, as the picker shows them.
    assert [t.language for t in found] == sorted(t.language for t in found)


def test_starter_templates_use_only_documented_variables() -> None:
    for path in TEMPLATES.iterdir():
        source = path.read_text(encoding="utf-8")
        for chunk in source.split("{{")[1:]:
            variable = chunk.split("}}")[0].strip().split(".")[0].split("|")[0].strip()
            assert variable in VARIABLES or variable in PURPOSE_VARIABLES, f"{path.name} uses {variable}"


# -- rendering and its errors ----------------------------------------------------------------


def test_a_missing_variable_is_an_error_naming_it_never_a_blank() -> None:
    template = _template("Dear {{ customer_name }}, your order {{ order_id }} has shipped.")
    with pytest.raises(TemplateRenderError) as caught:
        render_template(template, sample_variables(now=NOW))
    assert caught.value.variable == "order_id"
    assert str(caught.value) == "The template uses {{ order_id }}, which this ticket doesn't have."
    assert caught.value.field == "text"


def test_a_missing_variable_in_the_html_part_says_so() -> None:
    template = _template("Hi {{ customer_name }}", html="<p>{{ customer.nickname }}</p>")
    with pytest.raises(TemplateRenderError) as caught:
        render_template(template, sample_variables(now=NOW))
    assert caught.value.field == "html"
    assert "HTML part" in str(caught.value) and "{{ customer }}" in str(caught.value)


def test_a_syntax_error_names_the_line() -> None:
    with pytest.raises(TemplateRenderError, match=r"mistake on line 2"):
        render_source("Hello\n{% if customer_name %}unclosed", sample_variables(now=NOW))


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ joiner.__init__.__globals__.os }}",
        "{{ lipsum.__globals__['os'].popen('id').read() }}",
        "{{ namespace.__init__.__globals__ }}",
        "{{ self.__init__.__globals__ }}",
        "{{ customer_name.__class__.__base__.__subclasses__() }}",
        "{{ '{0.__class__}'.format(customer_name) }}",
        "{{ today.__class__.__module__ }}",
        "{% set x = customer_name|attr('__class__') %}{{ x }}",
        "{{ 2 ** 1000000000 }}",
        "{% set x = 9 ** 99 %}{{ x ** 99 ** 99 }}",
        "{% set x = 10 ** 300 %}{{ x * x * x * x * x * x * x * x * x * x * x * x * x * x }}",
        "{{ 'x' * 1000000000 }}",
        "{% for i in range(1000000000) %}{% endfor %}",
        "{% include '/etc/passwd' %}",
    ],
)
@pytest.mark.parametrize("part", ["text", "html"])
def test_sandbox_escapes_and_bombs_are_refused_with_a_sentence(source: str, part: str) -> None:
    started = time.monotonic()
    with pytest.raises(TemplateRenderError) as caught:
        render_source(source, sample_variables(now=NOW), part=part)  # type: ignore[arg-type]
    assert time.monotonic() - started < 5
    message = str(caught.value)
    assert message.startswith("The template") and "Traceback" not in message
    assert caught.value.field == part


def test_customer_data_is_escaped_in_html_only() -> None:
    variables = {**sample_variables(now=NOW), "customer_name": "Tom & <b>Jerry</b>"}
    rendered = render_template(
        _template("Hi {{ customer_name }}", html="<p>Hi {{ customer_name }}</p>"), variables
    )
    assert rendered.text == "Hi Tom & <b>Jerry</b>"
    assert rendered.html == "<p>Hi Tom &amp; &lt;b&gt;Jerry&lt;/b&gt;</p>"


def test_first_names() -> None:
    assert first_name("Maria Rossi") == "Maria"
    assert first_name("Rossi, Maria") == "Maria"
    assert first_name("  ") == ""


# -- variables of a real ticket ----------------------------------------------------------------


def _ingest(session_factory: sessionmaker[Session], raw: bytes) -> int:
    with session_factory.begin() as session:
        return ingest_email(
            session, raw, mailbox="box", channel="C0SUPPORT", now=NOW, own_addresses=("support@example.com",)
        ).ticket_id


def test_reply_variables_of_a_ticket(session_factory: sessionmaker[Session]) -> None:
    first = customer_mail(1, sender="maria@example.org", sender_name="Maria Rossi", subject="Cannot sign in")
    ticket_id = _ingest(session_factory, first)
    follow_up = customer_mail(
        2,
        sender="maria@example.org",
        sender_name="Maria Rossi",
        subject="Re: Cannot sign in [#1]",
        body="Still locked out.\n\nOn Friday Support wrote:\n> old text\n",
    )
    _ingest(session_factory, follow_up)
    with session_factory() as session:
        variables = reply_variables(
            session, ticket_id, agent_name="Anna Bianchi", support_address="support@example.com", now=NOW
        )
    assert variables == {
        "customer_name": "Maria Rossi",
        "customer_first_name": "Maria",
        "customer_email": "maria@example.org",
        "ticket_number": 1,
        "subject": "Cannot sign in",
        "agent_name": "Anna Bianchi",
        "agent_first_name": "Anna",
        "previous_message": "Still locked out.",
        "support_address": "support@example.com",
        "today": NOW.date(),
    }
    assert set(variables) == set(VARIABLES)


def test_a_customer_without_a_name_is_called_by_their_address(session_factory: sessionmaker[Session]) -> None:
    raw = (
        b"From: mario.verdi@example.org\r\nTo: support@example.com\r\nSubject: Hi\r\n"
        b"Message-ID: <noname@example.org>\r\nDate: Fri, 20 Nov 2026 09:00:00 +0000\r\n\r\nHello\r\n"
    )
    ticket_id = _ingest(session_factory, raw)
    with session_factory() as session:
        variables = reply_variables(session, ticket_id, agent_name="Anna", support_address="s@x.org", now=NOW)
    assert variables["customer_name"] == "mario.verdi"
    assert variables["customer_first_name"] == "mario.verdi"


# -- versions saved from Slack -----------------------------------------------------------------


def test_a_saved_version_overrides_the_file_and_history_keeps_every_version(
    session_factory: sessionmaker[Session],
) -> None:
    with session_factory() as session:
        shipped = get_template(session, TEMPLATES, "password_reset.en")
    assert shipped.source == "file" and shipped.html

    with session_factory.begin() as session:
        first = _save(session, text="First {{ customer_first_name }}")
    with session_factory.begin() as session:
        second = _save(
            session,
            text="Second {{ customer_first_name }}",
            html="<p>{{ agent_name }}</p>",
            tags="Account, Login",
        )
    assert (first.version, second.version) == (1, 2)

    with session_factory() as session:
        current = get_template(session, TEMPLATES, "password_reset.en")
        older = get_template(session, TEMPLATES, "password_reset.en", version=1)
        listed = {t.name: t for t in list_templates(session, TEMPLATES)}
        history = template_history(session, "password_reset.en")
        events = session.scalars(
            select(Event).where(Event.action == "template_saved").order_by(Event.id)
        ).all()
        untouched = get_template(session, TEMPLATES, "password_reset.it")

    assert (
        current.source == "db" and current.version == 2 and current.text == "Second {{ customer_first_name }}"
    )
    assert current.tags == ("account", "login") and current.updated_by == MANAGER
    assert older.text == "First {{ customer_first_name }}" and older.html is None
    assert listed["password_reset.en"] == current
    assert listed["password_reset.it"].source == "file"
    assert untouched.source == "file"
    assert [h.version for h in history] == [2, 1]
    assert [(e.actor, e.data["name"], e.data["version"]) for e in events] == [
        (MANAGER, "password_reset.en", 1),
        (MANAGER, "password_reset.en", 2),
    ]
    assert render_template(current, sample_variables(now=NOW)).text == "Second Maria"


def test_a_new_template_can_be_created_from_slack(session_factory: sessionmaker[Session]) -> None:
    with session_factory.begin() as session:
        _save(
            session,
            name="shipping_delay.it",
            title="Ritardo spedizione",
            language="IT",
            text="Gentile {{ customer_name }}",
        )
    with session_factory() as session:
        names = [t.name for t in list_templates(session, TEMPLATES)]
        created = get_template(session, TEMPLATES, "shipping_delay.it")
    assert "shipping_delay.it" in names
    assert created.language == "it" and created.version == 1


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"name": "../../etc/passwd"}, "name"),
        ({"name": "Has Spaces"}, "name"),
        ({"title": "  "}, "title"),
        ({"language": "english please"}, "language"),
        ({"tags": ["ok", "not ok!"]}, "tags"),
        ({"text": "   "}, "text"),
        ({"text": "Hi {{ custmer_name }}"}, "text"),
        ({"text": "{{ ''.__class__ }}"}, "text"),
        ({"text": "{% if %}"}, "text"),
        ({"html": "<p>{{ cycler.__init__.__globals__ }}</p>"}, "html"),
    ],
)
def test_saving_refuses_what_would_fail_later(
    session_factory: sessionmaker[Session], changes: dict[str, object], field: str
) -> None:
    with session_factory.begin() as session, pytest.raises(TemplateError) as caught:
        _save(session, **changes)
    assert caught.value.field == field
    with session_factory() as session:
        assert session.scalars(select(TemplateVersion)).all() == []
        assert session.scalars(select(Event)).all() == []


def test_unknown_and_path_like_names_are_not_found(session_factory: sessionmaker[Session]) -> None:
    with session_factory() as session:
        for name in ("no_such_template", "../pyproject", "/etc/passwd", "password_reset.en/../x"):
            with pytest.raises(TemplateNotFound):
                get_template(session, TEMPLATES, name)
        with pytest.raises(TemplateNotFound):
            get_template(session, TEMPLATES, "password_reset.en", version=7)


def test_a_broken_file_is_skipped_not_fatal(session_factory: sessionmaker[Session], tmp_path: Path) -> None:
    (tmp_path / "good.en.txt").write_text(
        "---\ntitle: Good\nlanguage: en\ntags: [a]\n---\nHi {{ customer_name }}\n"
    )
    (tmp_path / "bad.en.txt").write_text("---\ntitle: [unclosed\n---\nHi\n")
    (tmp_path / "plain.txt").write_text("No front matter {{ agent_name }}\n")
    with session_factory() as session:
        found = {t.name: t for t in list_templates(session, tmp_path)}
        with pytest.raises(TemplateError, match="not valid YAML"):
            get_template(session, tmp_path, "bad.en")
    assert set(found) == {"good.en", "plain"}
    assert found["good.en"].title == "Good" and found["good.en"].tags == ("a",)
    assert found["plain"].title == "plain" and found["plain"].text == "No front matter {{ agent_name }}\n"


def test_today_is_in_the_teams_time_zone(session_factory: sessionmaker[Session]) -> None:
    from zoneinfo import ZoneInfo

    ticket_id = _ingest(session_factory, customer_mail(1))
    late_evening = datetime(2026, 11, 20, 23, 30, tzinfo=UTC)
    with session_factory() as session:
        assert session.get(Ticket, ticket_id) is not None
        variables = reply_variables(
            session,
            ticket_id,
            agent_name="A",
            support_address="s@x.org",
            now=late_evening,
            timezone=ZoneInfo("Europe/Rome"),
        )
    assert variables["today"] == (late_evening + timedelta(hours=1)).date()
