"""`/survey/<token>`: the pages a customer reaches from the satisfaction survey email.

The signed token is the only thing that says who may answer, so, as with the calendar
feeds, it never reaches a log line (waitress's messages that name the path are
masked), and every link we did not make gets the same plain 404. The pages are
self-contained (no scripts, no external assets, one inline style sheet), sent with a
Content-Security-Policy that forbids anything else and `Referrer-Policy: no-referrer`,
so the token does not leak to any other site.

Why a plain GET records an answer, and when it does not: the email promises one
click, and a customer who clicks "Yes, solved" and closes the tab has answered. But
mail security scanners (and some mail clients) fetch every link of a message as it
arrives, both answers included, and the last answer wins. So a GET records only
once the email has been delivered for `PREFETCH_GRACE`: scanners fetch at delivery
time, people read later. A GET inside that window, a HEAD, or a request marked as a
prefetch only shows the page with the answer chosen and a button that sends it
(a POST, which scanners do not make). Every POST, a comment or a change of answer,
always records. The README's "Satisfaction surveys" section says the same to users.
"""

from __future__ import annotations

import html
import logging
import re
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

from sqlalchemy.orm import Session, sessionmaker

from bot.clock import Clock
from bot.config import Settings
from bot.outbox.queue import notify_workers
from bot.slack.survey_notices import survey_answer_notice
from bot.storage.db import transaction
from bot.tickets.survey_answers import (
    COMMENT_LIMIT,
    SurveyFacts,
    clean_comment,
    opt_out,
    record_answer,
    survey_facts,
)
from bot.tickets.survey_links import LinkClaim, LinkError, LinkExpired, read_link, sign_link, survey_key
from bot.web import WSGIApp

log = logging.getLogger(__name__)

PREFIX = "/survey/"
PREFETCH_GRACE = timedelta(minutes=5)
_PATH = re.compile(r"/survey/([A-Za-z0-9_-]{1,128})")
_ANY_SURVEY_PATH = re.compile(r"/survey/[^\s'\"?]*")
# A 2,000-character comment is at most 8 KB of UTF-8, three times that percent-encoded.
_BODY_LIMIT = 32 * 1024
_PREFETCH_HEADERS = ("HTTP_SEC_PURPOSE", "HTTP_PURPOSE", "HTTP_X_PURPOSE", "HTTP_X_MOZ")

_HEADERS = [
    ("Content-Type", "text/html; charset=utf-8"),
    ("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Content-Type-Options", "nosniff"),
    # CSP's default-src does not cover framing; a page with answer buttons must not be framed.
    ("X-Frame-Options", "DENY"),
    # The page holds the token in its forms: no shared cache may keep it.
    ("Cache-Control", "no-store"),
]


class MaskSurveyPaths(logging.Filter):
    """Replaces whatever follows /survey/ in a record with ***."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if PREFIX in message:
            record.msg, record.args = _ANY_SURVEY_PATH.sub(PREFIX + "***", message), None
        return True


def _mask_waitress_logs() -> None:
    waitress_log = logging.getLogger("waitress")
    if not any(isinstance(f, MaskSurveyPaths) for f in waitress_log.filters):
        waitress_log.addFilter(MaskSurveyPaths())


def survey_app(factory: sessionmaker[Session], clock: Clock, settings: Settings) -> WSGIApp:
    """The WSGI app for the `/survey/` prefix of the bot's router."""
    _mask_waitress_logs()

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        if method not in {"GET", "HEAD", "POST"}:
            return _respond(start_response, method, _Page.not_allowed(), extra=[("Allow", "GET, HEAD, POST")])
        match = _PATH.fullmatch(environ.get("PATH_INFO", ""))
        token = match.group(1) if match else ""
        try:
            page = _serve(factory, clock, settings, environ, method, token)
        except Exception as exc:
            # The traceback may quote the token (a database error prints its parameters).
            text = "".join(traceback.format_exception(exc))
            log.error("serving a survey page failed:\n%s", text.replace(token, "***") if token else text)
            page = _Page.error()
        return _respond(start_response, method, page)

    return app


def _serve(
    factory: sessionmaker[Session],
    clock: Clock,
    settings: Settings,
    environ: dict[str, Any],
    method: str,
    token: str,
) -> _Page:
    now = clock.now()
    with factory() as session:
        key = survey_key(session, settings)
    if key is None or not token:
        return _Page.not_found()
    try:
        claim = read_link(key, token, now)
    except LinkExpired as expired:
        with factory() as session:
            facts = survey_facts(session, expired.claim.survey_id)
        return _Page.not_found() if facts is None else _Page.expired(_texts(facts.language))
    except LinkError:
        return _Page.not_found()
    with factory() as session:
        facts = survey_facts(session, claim.survey_id)
    if facts is None:
        return _Page.not_found()
    t = _texts(facts.language)

    if claim.action == "unsubscribe":
        if method == "POST":
            with transaction(factory) as session:
                opt_out(session, claim.survey_id, now)
            return _Page.opted_out(t, facts.recipient)
        if facts.opted_out:
            return _Page.opted_out(t, facts.recipient)
        return _Page.confirm_opt_out(t, facts.recipient)

    solved = claim.action == "yes"
    other = sign_link(key, claim.survey_id, "no" if solved else "yes", claim.expires_at)
    if method == "POST":
        form = _read_form(environ)
        if form is None:
            return _Page.too_large(t)
        comment = form.get("comment", "")
        if len(clean_comment(comment)) > COMMENT_LIMIT:
            page = _Page.answer(t, facts, solved, other, recorded=False, comment=comment, error=t.too_long)
            return replace(page, status="400 Bad Request")
        facts = _record(factory, claim, solved, comment, now)
        return _Page.answer(
            t, facts, solved, other, recorded=True, comment_saved=bool(clean_comment(comment))
        )
    if method == "GET" and _may_record_on_get(environ, facts, now):
        facts = _record(factory, claim, solved, None, now)
        return _Page.answer(t, facts, solved, other, recorded=True)
    return _Page.answer(t, facts, solved, other, recorded=False)


def _record(
    factory: sessionmaker[Session], claim: LinkClaim, solved: bool, comment: str | None, now: datetime
) -> SurveyFacts:
    with transaction(factory) as session:
        record_answer(
            session,
            claim.survey_id,
            solved=solved,
            comment=comment,
            now=now,
            write_notice=survey_answer_notice,
        )
        facts = survey_facts(session, claim.survey_id)
    notify_workers()
    assert facts is not None
    return facts


def _may_record_on_get(environ: dict[str, Any], facts: SurveyFacts, now: datetime) -> bool:
    """A GET is a person's click unless it smells of a prefetch (see the module's docstring)."""
    if any("prefetch" in str(environ.get(h, "")).lower() for h in _PREFETCH_HEADERS):
        return False
    if "preview" in str(environ.get("HTTP_X_PURPOSE", "")).lower():
        return False
    # Not yet handed to the mail server: nobody should hold the link, so click to confirm.
    return facts.delivered_at is not None and now - facts.delivered_at >= PREFETCH_GRACE


def _read_form(environ: dict[str, Any]) -> dict[str, str] | None:
    """The posted form's fields (first value of each); None when the body is too large."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > _BODY_LIMIT:
        return None
    body = environ["wsgi.input"].read(length) if length > 0 else b""
    fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {name: values[0] for name, values in fields.items() if values}


def _respond(
    start_response: Callable[..., Any],
    method: str,
    page: _Page,
    *,
    extra: list[tuple[str, str]] | None = None,
) -> list[bytes]:
    data = page.render().encode("utf-8")
    start_response(page.status, [*_HEADERS, ("Content-Length", str(len(data))), *(extra or [])])
    return [] if method == "HEAD" else [data]


# -- words ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Texts:
    lang: str
    yes: str
    no: str
    thanks_title: str
    your_answer: str  # {number}, {answer}
    solved_note: str
    unsolved_note: str
    confirm_title: str
    confirm_intro: str  # {number}, {answer}
    confirm_button: str
    comment_label: str
    comment_button: str
    comment_saved: str
    switch: str  # {answer}
    too_long: str
    too_large: str
    opt_out_title: str
    opt_out_intro: str  # {email}
    opt_out_button: str
    opted_out_title: str
    opted_out_text: str  # {email}
    expired_title: str
    expired_text: str


_TEXTS = {
    "en": _Texts(
        lang="en",
        yes="Yes, solved",
        no="No, not yet",
        thanks_title="Thank you",
        your_answer="Your answer for request #{number}: {answer}.",
        solved_note="We're glad it's sorted.",
        unsolved_note=(
            "The team can see your answer. Tell us below what is still wrong, or reply to our email."
        ),
        confirm_title="Did we solve it?",
        confirm_intro="Request #{number}. Your answer: {answer}.",
        confirm_button="Send my answer",
        comment_label="Anything you'd like to add? (optional, up to 2,000 characters)",
        comment_button="Send comment",
        comment_saved="Your comment has reached the team.",
        switch="Change my answer to “{answer}”",
        too_long="Please keep your comment under 2,000 characters.",
        too_large=(
            "That was more than we can take in one go. Please keep your comment under 2,000 characters."
        ),
        opt_out_title="No more satisfaction questions?",
        opt_out_intro=(
            "We will stop sending these questions to {email}. Answers to your requests are not affected."
        ),
        opt_out_button="Stop the questions",
        opted_out_title="Done",
        opted_out_text="{email} will receive no more satisfaction questions.",
        expired_title="This link has expired",
        expired_text=(
            "Thank you for wanting to answer. If something is still not right, just reply to our email."
        ),
    ),
    "it": _Texts(
        lang="it",
        yes="Sì, risolto",
        no="No, non ancora",
        thanks_title="Grazie",
        your_answer="La sua risposta per la richiesta #{number}: {answer}.",
        solved_note="Siamo lieti che sia tutto a posto.",
        unsolved_note=(
            "Il team vede la sua risposta. "
            "Ci scriva qui sotto cosa non va ancora, oppure risponda alla nostra email."
        ),
        confirm_title="Abbiamo risolto il problema?",
        confirm_intro="Richiesta #{number}. La sua risposta: {answer}.",
        confirm_button="Invia la risposta",
        comment_label="Vuole aggiungere qualcosa? (facoltativo, fino a 2.000 caratteri)",
        comment_button="Invia il commento",
        comment_saved="Il suo commento è arrivato al team.",
        switch="Cambia la risposta in “{answer}”",
        too_long="Il commento può essere lungo al massimo 2.000 caratteri.",
        too_large="Il testo è troppo lungo. Il commento può essere lungo al massimo 2.000 caratteri.",
        opt_out_title="Non ricevere più domande di soddisfazione?",
        opt_out_intro=(
            "Non invieremo più queste domande a {email}. Le risposte alle sue richieste non cambiano."
        ),
        opt_out_button="Non inviatemele più",
        opted_out_title="Fatto",
        opted_out_text="{email} non riceverà più domande di soddisfazione.",
        expired_title="Questo link è scaduto",
        expired_text=(
            "Grazie per voler rispondere. Se qualcosa non va ancora, risponda pure alla nostra email."
        ),
    ),
}


def _texts(language: str) -> _Texts:
    return _TEXTS.get(language, _TEXTS["en"])


# -- pages ---------------------------------------------------------------------------------

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Arial, sans-serif; font-size: 1.05rem;
  line-height: 1.5; color: #1f2328; background: #ffffff; margin: 0; }
main { max-width: 36rem; margin: 0 auto; padding: 2rem 1.25rem; }
h1 { font-size: 1.6rem; margin: 0 0 1rem; }
label { display: block; font-weight: 600; margin: 1.5rem 0 0.5rem; }
textarea { box-sizing: border-box; width: 100%; min-height: 8rem; font: inherit; padding: 0.5rem;
  border: 1px solid #6e7781; border-radius: 4px; }
button { font: inherit; font-weight: 600; padding: 0.6rem 1.2rem; margin-top: 0.75rem; border-radius: 4px;
  border: 2px solid #0b5cad; background: #0b5cad; color: #ffffff; cursor: pointer; }
button.secondary { background: #ffffff; color: #0b5cad; }
button:focus-visible, textarea:focus-visible { outline: 3px solid #f2a100; outline-offset: 2px; }
.note { color: #3d444d; }
.error { color: #a40e26; font-weight: 600; }
"""


@dataclass(frozen=True)
class _Page:
    status: str
    lang: str
    title: str
    body: str  # already escaped HTML

    def render(self) -> str:
        return (
            "<!DOCTYPE html>\n"
            f'<html lang="{self.lang}">\n<head>\n<meta charset="utf-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            '<meta name="robots" content="noindex, nofollow">\n'
            f"<title>{_e(self.title)}</title>\n<style>{_STYLE}</style>\n</head>\n"
            f"<body>\n<main>\n<h1>{_e(self.title)}</h1>\n{self.body}\n</main>\n</body>\n</html>\n"
        )

    @staticmethod
    def answer(
        t: _Texts,
        facts: SurveyFacts,
        solved: bool,
        other_token: str,
        *,
        recorded: bool,
        comment: str | None = None,
        comment_saved: bool = False,
        error: str = "",
    ) -> _Page:
        answer = t.yes if solved else t.no
        other = t.no if solved else t.yes
        parts: list[str] = []
        if recorded:
            parts.append(f"<p>{_e(t.your_answer.format(number=facts.ticket_number, answer=answer))}</p>")
            parts.append(f'<p class="note">{_e(t.solved_note if solved else t.unsolved_note)}</p>')
            if comment_saved:
                parts.append(f'<p role="status">{_e(t.comment_saved)}</p>')
        else:
            parts.append(f"<p>{_e(t.confirm_intro.format(number=facts.ticket_number, answer=answer))}</p>")
        if error:
            parts.append(f'<p class="error" role="alert">{_e(error)}</p>')
        # The comment form posts back to this very link (no action attribute): the signed
        # token is what makes the POST genuine, so it needs no separate CSRF token.
        text = comment if comment is not None else (facts.comment or "")
        parts.append(
            '<form method="post">\n'
            f'<label for="comment">{_e(t.comment_label)}</label>\n'
            f'<textarea id="comment" name="comment" maxlength="{COMMENT_LIMIT}" rows="6">'
            f"{_e(text)}</textarea>\n"
            f'<button type="submit">{_e(t.comment_button if recorded else t.confirm_button)}</button>\n'
            "</form>"
        )
        # Relative, so it works behind a proxy that mounts the bot under a path.
        parts.append(
            f'<form method="post" action="{_e(other_token)}">\n'
            f'<button type="submit" class="secondary">{_e(t.switch.format(answer=other))}</button>\n'
            "</form>"
        )
        return _Page("200 OK", t.lang, t.thanks_title if recorded else t.confirm_title, "\n".join(parts))

    @staticmethod
    def confirm_opt_out(t: _Texts, email: str) -> _Page:
        body = (
            f"<p>{_e(t.opt_out_intro.format(email=email))}</p>\n"
            f'<form method="post">\n<button type="submit">{_e(t.opt_out_button)}</button>\n</form>'
        )
        return _Page("200 OK", t.lang, t.opt_out_title, body)

    @staticmethod
    def opted_out(t: _Texts, email: str) -> _Page:
        return _Page(
            "200 OK", t.lang, t.opted_out_title, f"<p>{_e(t.opted_out_text.format(email=email))}</p>"
        )

    @staticmethod
    def expired(t: _Texts) -> _Page:
        return _Page("410 Gone", t.lang, t.expired_title, f"<p>{_e(t.expired_text)}</p>")

    @staticmethod
    def too_large(t: _Texts) -> _Page:
        return _Page(
            "413 Content Too Large", t.lang, t.thanks_title, f'<p class="error">{_e(t.too_large)}</p>'
        )

    @staticmethod
    def not_found() -> _Page:
        # One page for every link we did not make (or no longer know): it reveals nothing.
        return _Page(
            "404 Not Found",
            "en",
            "Link not found",
            "<p>This link is not valid. Please use the link from our email.</p>\n"
            '<p lang="it">Questo link non è valido. Usi il link della nostra email.</p>',
        )

    @staticmethod
    def not_allowed() -> _Page:
        return _Page("405 Method Not Allowed", "en", "Not allowed", "<p>Open the link from our email.</p>")

    @staticmethod
    def error() -> _Page:
        return _Page(
            "500 Internal Server Error",
            "en",
            "Something went wrong",
            "<p>We could not record this just now. Please try the link again in a few minutes.</p>",
        )


def _e(text: str) -> str:
    return html.escape(text, quote=True)
