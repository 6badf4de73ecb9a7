"""Reply templates: Jinja2 files in `templates/`, overridden by versions managers save from Slack.

A template is `<name>.txt` (a YAML front matter block with title, language and
tags, then the plain-text body) and, optionally, `<name>.html` beside it as the
HTML alternative. Managers' edits are stored as new `TemplateVersion` rows, never
overwrites; the newest one of a name wins over the file of that name.

Template text is written by people and rendered with a customer's data, so it runs
in Jinja2's sandbox with StrictUndefined: a variable the ticket doesn't have, a
syntax error or a reach for Python internals is a `TemplateRenderError` with a
sentence the agent can act on, never a blank or a traceback in the customer's email.
"""

from __future__ import annotations

import ctypes
import logging
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from pathlib import Path
from typing import Any, Literal

import jinja2.exceptions as jinja_errors
import jinja2.filters as jinja_filters
import yaml
from jinja2 import Environment, StrictUndefined, Template, nodes, pass_environment, pass_eval_context
from jinja2.compiler import CodeGenerator, Frame
from jinja2.nodes import EvalContext
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.storage.models import Customer, TemplateVersion, Ticket
from bot.tickets.events import record_event
from bot.tickets.replies import message_to_answer
from bot.tickets.workflow import TicketError

log = logging.getLogger(__name__)

# One or more dot-separated segments ("password_reset.en"): no slashes and no "..",
# because a name read from Slack becomes a file name in the templates directory.
_NAME = re.compile(r"^[a-z0-9][a-z0-9_\-]*(?:\.[a-z0-9_\-]+)*$")
_NAME_LIMIT = 120  # TemplateVersion.name
_TITLE_LIMIT = 200
_LANGUAGE = re.compile(r"^[a-z]{2,3}(?:-[a-z0-9]{2,6})?$")  # BCP 47-ish: en, it, pt-br
_TAG = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,39}$")
_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)^---[ \t]*(?:\r?\n|\Z)", re.DOTALL | re.MULTILINE)
_UNDEFINED_NAME = re.compile(r"^'([^']+)' is undefined$")
_MISSING_ATTRIBUTE = re.compile(r"has no attribute '([^']+)'$")

# Guards against a template that would stall the worker or fill memory: a person
# typing a template is trusted with wording, not with the process.
MAX_OUTPUT = 100_000
_MAX_BITS = 4096
# What one operation may build on the way to the output (a `replace` over a long
# message, say): a few times the output cap, so no step allocates more than a few MB.
_MAX_WORK = 4 * MAX_OUTPUT
# A reply template renders in milliseconds; one that runs this long is looping.
RENDER_SECONDS = 0.5

Part = Literal["text", "html"]


class TemplateError(ValueError):
    """A template cannot be used or saved; the message is meant for the person who tried.

    `field` names the input it is about (name, title, language, tags, text, html), so a
    form can show the message next to it.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class TemplateNotFound(TemplateError):
    """No file and no saved version has this name."""


class TemplateRenderError(TemplateError):
    """The template does not render: missing variable, syntax error or sandbox violation."""

    def __init__(self, message: str, *, field: Part = "text", variable: str | None = None) -> None:
        super().__init__(message, field=field)
        self.variable = variable


@dataclass(frozen=True)
class ReplyTemplate:
    name: str
    title: str
    language: str
    tags: tuple[str, ...]
    text: str  # Jinja2 source of the plain-text part
    html: str | None  # Jinja2 source of the HTML alternative
    source: Literal["file", "db"]
    # Saved versions only: which one, by whom, when. A file as shipped has none.
    version: int | None = None
    updated_by: str | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True)
class RenderedReply:
    text: str
    html: str | None


class _RenderTimeout(BaseException):
    """Raised into the rendering thread at the deadline. A BaseException, so Jinja2's own
    `except Exception` handlers cannot swallow it."""


class _Deadline:
    """Stop a render that runs past `seconds`: nested loops over `range(100000)` are
    legal one by one and take hours together, and nothing in Jinja2 counts iterations.

    A timer raises `_RenderTimeout` inside the rendering thread (CPython checks for it
    between bytecodes, and rendering is Python code). The lock makes "fired" and
    "finished" exclusive, and `stop` clears an exception that fired but was not yet
    raised, so it can never surface after the render in unrelated code.
    """

    def __init__(self, seconds: float) -> None:
        self._thread = threading.get_ident()
        self._lock = threading.Lock()
        self._running = True
        self.fired = False
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        with self._lock:
            if self._running:
                self.fired = True
                _set_async_exc(self._thread, _RenderTimeout)

    def stop(self) -> None:
        with self._lock:
            self._running = False
            if self.fired:
                _set_async_exc(self._thread, None)
        self._timer.cancel()


def _set_async_exc(thread: int, exc: type[BaseException] | None) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread), ctypes.py_object(exc) if exc is not None else None
    )


class _BoundedConcat(CodeGenerator):
    """`~` compiles to a plain join that no sandbox hook sees: `{% set ns.s = ns.s ~ ns.s %}`
    in a loop, or a macro passing `s ~ s` to itself, doubles a string forty times. Route
    every concatenation through a size check."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.bounded(")
        super().visit_Concat(node, frame)
        self.write(")")


def _too_big(what: str) -> jinja_errors.SecurityError:
    return jinja_errors.SecurityError(f"{what} too large")


def _check_length(value: Any, what: str = "text") -> Any:
    if hasattr(value, "__len__") and not isinstance(value, dict) and len(value) > MAX_OUTPUT:
        raise _too_big(what)
    return value


def _check_count(*numbers: Any) -> None:
    """Widths, paddings and repeat counts: none needs more than an email's length."""
    for number in numbers:
        if _integers(number) and abs(number) > MAX_OUTPUT:
            raise _too_big("width or count")


def _check_work(pieces: int, piece: int) -> None:
    """What an expanding operation would build: `pieces` copies of `piece` characters."""
    if pieces * piece > _MAX_WORK:
        raise _too_big("result")


def _check_format(fmt: str, args: Sequence[Any]) -> None:
    # A width or precision in the format itself (`%999999999s`, `{:>999999999}`) or one
    # taken from an argument (`%*s`, `{:{}}`) allocates before any length check can run.
    if _HUGE_WIDTH.search(fmt):
        raise _too_big("format width")
    if ("*" in fmt or _NESTED_FIELD.search(fmt)) and any(_integers(a) and abs(a) > MAX_OUTPUT for a in args):
        raise _too_big("format width")


_HUGE_WIDTH = re.compile(r"(?:%[-+ #0]*|\{[^{}]*:[^{}]*?)\d{6,}")
_NESTED_FIELD = re.compile(r"\{[^{}]*:[^{}]*\{")


def _expanding_str_call(method: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """Check a call of one of str's methods that can build a huge string from small input;
    returns the arguments to call it with (an iterable given to `join` is read once)."""
    name, text = method.__name__, method.__self__
    values = [*args, *kwargs.values()]
    if name in ("center", "ljust", "rjust", "zfill"):
        _check_count(*values)
    elif name == "expandtabs":
        _check_count(*values)
        _check_work(text.count("\t") + 1, max([v for v in values if _integers(v)] or [8]))
    elif name == "replace" and len(args) >= 2 and isinstance(args[0], str) and isinstance(args[1], str):
        _check_work(text.count(args[0]) if args[0] else len(text) + 1, len(args[1]))
    elif name == "join" and args:
        items = list(args[0])
        _check_work(len(items), len(text))
        _check_work(1, sum(len(str(i)) for i in items))
        return (items,)
    elif name in ("format", "format_map"):
        _check_format(text, [*values, *(args[0].values() if name == "format_map" and args else [])])
    return args


class _ReplySandbox(ImmutableSandboxedEnvironment):
    """Jinja2's sandbox, immutable (no `list.append`/`extend` to grow a list in a loop),
    plus limits on everything that can build something huge from a short template:
    operators, `~`, str's padding/replacing/joining/formatting methods and the filters
    that do the same. The output cap and the deadline in `render_source` catch the rest.
    """

    # Intercepting an operator also stops Jinja2 from folding it at compile time,
    # where `{{ 2 ** 10 ** 9 }}` would hang before any check could run.
    intercepted_binops = frozenset({"*", "**", "+", "%"})
    code_generator_class = _BoundedConcat

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        # lipsum(10**6) writes a million paragraphs; no reply needs placeholder Latin.
        del self.globals["lipsum"]
        self.filters.update(_BOUNDED_FILTERS)

    def bounded(self, value: Any) -> Any:
        return _check_length(value)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if _integers(left, right):
            # Size of the result in bits; no email needs a number longer than a few lines.
            bits = (
                left.bit_length() * abs(right) if operator == "**" else left.bit_length() + right.bit_length()
            )
            if operator in ("*", "**") and bits > _MAX_BITS:
                raise jinja_errors.SecurityError("number too large")
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if hasattr(seq, "__len__") and _integers(times) and len(seq) * times > MAX_OUTPUT:
                    raise jinja_errors.SecurityError("repetition too large")
        elif operator == "+" and hasattr(left, "__len__") and hasattr(right, "__len__"):
            if len(left) + len(right) > MAX_OUTPUT:
                raise _too_big("text")
        elif operator == "%" and isinstance(left, str):
            _check_format(left, right if isinstance(right, tuple) else [right])
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        method = getattr(__obj, "__wrapped__", __obj)  # str.format comes wrapped by the sandbox
        if isinstance(getattr(method, "__self__", None), str) and getattr(method, "__name__", "") in (
            _EXPANDING_STR_METHODS
        ):
            args = _expanding_str_call(method, args, kwargs)
        return super().call(__context, __obj, *args, **kwargs)


_EXPANDING_STR_METHODS = frozenset(
    {"center", "ljust", "rjust", "zfill", "expandtabs", "replace", "join", "format", "format_map"}
)


def _bounded_center(value: Any, width: int = 80) -> str:
    _check_count(width)
    return jinja_filters.do_center(value, width)


def _bounded_indent(value: Any, width: int | str = 4, first: bool = False, blank: bool = False) -> str:
    _check_count(width)
    lines = str(value).count("\n") + 1
    _check_work(lines, len(width) if isinstance(width, str) else int(width))
    return jinja_filters.do_indent(value, width, first, blank)


def _bounded_wordwrap(
    environment: Environment,
    value: Any,
    width: int = 79,
    break_long_words: bool = True,
    wrapstring: str | None = None,
    break_on_hyphens: bool = True,
) -> str:
    _check_work(len(str(value)) // max(int(width), 1) + 1, len(wrapstring or "\n"))
    return jinja_filters.do_wordwrap(
        environment, value, width, break_long_words, wrapstring, break_on_hyphens
    )


def _bounded_replace(eval_ctx: EvalContext, value: Any, old: Any, new: Any, count: int | None = None) -> str:
    text, old_text = str(value), str(old)
    _check_work(text.count(old_text) if old_text else len(text) + 1, len(str(new)))
    return jinja_filters.do_replace(eval_ctx, value, old, new, count)


def _bounded_join(eval_ctx: EvalContext, value: Any, d: str = "", attribute: Any = None) -> str:
    items = list(value)
    _check_work(len(items), len(str(d)))
    return jinja_filters.sync_do_join(eval_ctx, items, d, attribute)


def _bounded_format(value: Any, *args: Any, **kwargs: Any) -> str:
    _check_format(str(value), [*args, *kwargs.values()])
    return jinja_filters.do_format(value, *args, **kwargs)


def _bounded_batch(value: Any, linecount: int, fill_with: Any = None) -> Any:
    _check_count(linecount)
    return jinja_filters.do_batch(value, linecount, fill_with)


def _bounded_slice(value: Any, slices: int, fill_with: Any = None) -> Any:
    _check_count(slices)
    return jinja_filters.sync_do_slice(value, slices, fill_with)


# Jinja2 passes the environment / eval context to these by their markers, as to the originals.
_bounded_wordwrap = pass_environment(_bounded_wordwrap)
_bounded_replace = pass_eval_context(_bounded_replace)
_bounded_join = pass_eval_context(_bounded_join)
_BOUNDED_FILTERS: dict[str, Any] = {
    "center": _bounded_center,
    "indent": _bounded_indent,
    "wordwrap": _bounded_wordwrap,
    "replace": _bounded_replace,
    "join": _bounded_join,
    "format": _bounded_format,
    "batch": _bounded_batch,
    "slice": _bounded_slice,
}


def _integers(*values: Any) -> bool:
    return all(isinstance(v, int) and not isinstance(v, bool) for v in values)


def _environment(*, autoescape: bool) -> _ReplySandbox:
    return _ReplySandbox(
        undefined=StrictUndefined,
        autoescape=autoescape,
        # Block tags on their own line leave no blank line behind in a plain-text email.
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


# Customer data is only ever escaped in the HTML part: in the text part "&" must stay "&".
_ENVIRONMENTS: dict[Part, _ReplySandbox] = {
    "text": _environment(autoescape=False),
    "html": _environment(autoescape=True),
}
_PART_LABEL: dict[Part, str] = {"text": "The template", "html": "The template's HTML part"}


# -- rendering ---------------------------------------------------------------------------


def render_template(template: ReplyTemplate, variables: dict[str, Any]) -> RenderedReply:
    """Both parts with these variables; raises TemplateRenderError with a sentence for the agent."""
    text = render_source(template.text, variables, part="text")
    html = render_source(template.html, variables, part="html") if template.html else None
    return RenderedReply(text=text, html=html)


def render_source(source: str, variables: dict[str, Any], *, part: Part = "text") -> str:
    label = _PART_LABEL[part]
    env = _ENVIRONMENTS[part]
    try:
        compiled = env.from_string(source)
    except jinja_errors.TemplateSyntaxError as exc:
        raise _syntax_error(exc, part) from None
    except RecursionError:
        raise TemplateRenderError(f"{label} nests too deeply to read.", field=part) from None
    deadline = _Deadline(RENDER_SECONDS)
    try:
        try:
            rendered = _bounded_render(compiled, variables)
        finally:
            deadline.stop()
    except _RenderTimeout:
        raise TemplateRenderError(
            f"{label} takes too long to render (over {RENDER_SECONDS:g} s); a reply template never "
            "needs that many loops.",
            field=part,
        ) from None
    except _OutputTooLong:
        raise TemplateRenderError(
            f"{label} produces more than {MAX_OUTPUT:,} characters, far more than an email reply.",
            field=part,
        ) from None
    except jinja_errors.SecurityError:
        raise TemplateRenderError(
            f"{label} tries to reach Python internals or to compute something huge; templates may not.",
            field=part,
        ) from None
    except jinja_errors.UndefinedError as exc:
        raise _undefined_error(str(exc), part) from None
    except RecursionError:
        raise TemplateRenderError(f"{label} calls itself without end.", field=part) from None
    except Exception as exc:
        # e.g. include without a loader, range() past the sandbox's limit, 1/0, a filter on
        # the wrong type, an index out of range: the template is at fault, and the agent is
        # the one who can say so.
        raise TemplateRenderError(f"{label} could not be rendered: {_short(exc)}", field=part) from None
    return rendered


class _OutputTooLong(Exception):
    pass


def _bounded_render(compiled: Template, variables: dict[str, Any]) -> str:
    # Piece by piece, so a loop printing 100,000 characters 100,000 times stops at the
    # cap instead of holding gigabytes until the final join.
    pieces: list[str] = []
    size = 0
    for piece in compiled.generate(variables):
        size += len(piece)
        if size > MAX_OUTPUT:
            raise _OutputTooLong
        pieces.append(piece)
    return "".join(pieces)


def _syntax_error(exc: jinja_errors.TemplateSyntaxError, part: Part) -> TemplateRenderError:
    where = f" on line {exc.lineno}" if exc.lineno else ""
    return TemplateRenderError(f"{_PART_LABEL[part]} has a mistake{where}: {_short(exc)}", field=part)


def _undefined_error(message: str, part: Part) -> TemplateRenderError:
    label = _PART_LABEL[part]
    found = _UNDEFINED_NAME.match(message)
    if found:
        name = found.group(1)
        return TemplateRenderError(
            f"{label} uses {{{{ {name} }}}}, which this ticket doesn't have.", field=part, variable=name
        )
    found = _MISSING_ATTRIBUTE.search(message)
    if found:
        name = found.group(1)
        return TemplateRenderError(
            f"{label} asks for “{name}”, which this ticket doesn't have.", field=part, variable=name
        )
    return TemplateRenderError(f"{label} uses something this ticket doesn't have ({message}).", field=part)


def _short(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return message.strip().splitlines()[0][:200]


# -- variables ----------------------------------------------------------------------------


VARIABLES: dict[str, str] = {
    "customer_name": "The customer's name (the part of their address before @ when the name is unknown)",
    "customer_first_name": "The first word of customer_name",
    "customer_email": "The customer's address",
    "ticket_number": "The ticket's number, e.g. 123",
    "subject": "The ticket's subject",
    "agent_name": "The replying agent's Slack display name",
    "agent_first_name": "The first word of agent_name",
    "previous_message": "The customer's latest message, without quoted history",
    "support_address": "The support address (SUPPORT_ADDRESS)",
    "today": "Today's date in the team's time zone (a date: {{ today.strftime('%d/%m/%Y') }})",
}

# Values only some automatic mails have: the after-hours acknowledgement (bot/tickets/autoack.py)
# and the satisfaction survey (bot/tickets/surveys.py). A template a person may also pick
# tests them with `{% if next_opening is defined %}`.
PURPOSE_VARIABLES: dict[str, str] = {
    "next_opening": "When the team is next open, in words, in the team's time zone (acknowledgement)",
    "survey_yes_url": "The survey's one-click 'yes, solved' link (survey)",
    "survey_no_url": "The survey's one-click 'not solved yet' link (survey)",
    "survey_unsubscribe_url": "The link to stop receiving surveys (survey)",
}


def reply_variables(
    session: Session,
    ticket_id: int,
    *,
    agent_name: str,
    support_address: str,
    now: datetime,
    timezone: tzinfo | None = None,
) -> dict[str, Any]:
    """What a template may use to answer this ticket (see VARIABLES and the README)."""
    ticket = session.get(Ticket, ticket_id)
    if ticket is None:
        raise TicketError(f"There is no ticket with id {ticket_id}.")
    customer: Customer | None = ticket.customer
    latest = message_to_answer(session, ticket_id)
    email = (customer.email if customer else "") or (latest.from_address if latest else "")
    name = _usable_name(customer.name if customer else "") or _usable_name(latest.from_name if latest else "")
    if not name:
        name = email.split("@", 1)[0]
    previous = ""
    if latest is not None:
        previous = (latest.view_text or latest.text or "").strip()
    return {
        "customer_name": name,
        "customer_first_name": first_name(name),
        "customer_email": email,
        "ticket_number": ticket.number,
        "subject": ticket.subject,
        "agent_name": agent_name,
        "agent_first_name": first_name(agent_name),
        "previous_message": previous,
        "support_address": support_address,
        "today": _today(now, timezone),
    }


def sample_variables(
    *, now: datetime, agent_name: str = "Alex Example", support_address: str = "support@example.com"
) -> dict[str, Any]:
    """Stand-in values for previews and for checking a template before it is saved."""
    return {
        "customer_name": "Maria Rossi",
        "customer_first_name": "Maria",
        "customer_email": "maria.rossi@example.org",
        "ticket_number": 123,
        "subject": "Cannot sign in",
        "agent_name": agent_name,
        "agent_first_name": first_name(agent_name),
        "previous_message": "Hello, I can't sign in since this morning. Can you help?",
        "support_address": support_address,
        "today": now.date(),
    }


def first_name(full: str) -> str:
    full = full.strip()
    if "," in full:  # "Rossi, Maria", as company directories write names
        given = full.split(",", 1)[1].strip()
        full = given or full.split(",", 1)[0]
    words = full.split()
    return words[0] if words else ""


def _usable_name(name: str) -> str:
    name = " ".join(name.split())
    # Mail clients often put the address itself in the display name.
    return "" if "@" in name else name


def _today(now: datetime, timezone: tzinfo | None) -> date:
    return (now.astimezone(timezone) if timezone is not None else now).date()


# -- files and saved versions -------------------------------------------------------------


def list_templates(session: Session, directory: Path) -> list[ReplyTemplate]:
    """Every usable template, saved versions overriding files, by language then title."""
    found: dict[str, ReplyTemplate] = {}
    for name in _file_names(directory):
        try:
            template = _load_file(directory, name)
        except TemplateError as exc:
            # One broken file must not hide every other template from the agents.
            log.warning("reply template %s is skipped: %s", name, exc)
            continue
        if template is not None:
            found[name] = template
    for template in _newest_versions(session):
        found[template.name] = template
    return sorted(found.values(), key=lambda t: (t.language, t.title.casefold(), t.name))


def get_template(
    session: Session, directory: Path, name: str, *, version: int | None = None
) -> ReplyTemplate:
    """The template in use under this name (or one saved version of it)."""
    name = name.strip()
    if not _valid_name(name):
        raise TemplateNotFound(f"There is no template called {name!r}.", field="name")
    query = select(TemplateVersion).where(TemplateVersion.name == name)
    if version is not None:
        row = session.scalar(query.where(TemplateVersion.version == version))
        if row is None:
            raise TemplateNotFound(f"Template {name!r} has no version {version}.", field="name")
        return _from_row(row)
    row = session.scalar(query.order_by(TemplateVersion.version.desc()).limit(1))
    if row is not None:
        return _from_row(row)
    template = _load_file(directory, name)
    if template is None:
        raise TemplateNotFound(f"There is no template called {name!r}.", field="name")
    return template


def template_history(session: Session, name: str) -> list[ReplyTemplate]:
    """Saved versions of a name, newest first (the file, if any, is what came before them)."""
    rows = session.scalars(
        select(TemplateVersion)
        .where(TemplateVersion.name == name.strip())
        .order_by(TemplateVersion.version.desc())
    )
    return [_from_row(row) for row in rows]


def save_template(
    session: Session,
    *,
    name: str,
    title: str,
    language: str,
    tags: Sequence[str] | str,
    text: str,
    html: str | None,
    user: str,
    now: datetime,
) -> ReplyTemplate:
    """Check a template and store it as the next version of its name; raises TemplateError."""
    name = name.strip().lower()
    if not _valid_name(name):
        raise TemplateError(
            "Use a short name of lowercase letters, digits, '-' and '_', with dots between parts, "
            "like password_reset.en.",
            field="name",
        )
    title = " ".join(title.split())
    if not title:
        raise TemplateError("Give the template a title, so agents can find it in the picker.", field="title")
    if len(title) > _TITLE_LIMIT:
        raise TemplateError(f"Keep the title under {_TITLE_LIMIT} characters.", field="title")
    language = language.strip().lower().replace("_", "-")
    if not _LANGUAGE.match(language):
        raise TemplateError("Give the language as a code like en, it or pt-br.", field="language")
    clean_tags = normalise_template_tags(tags)
    text = _normalise_body(text)
    if not text.strip():
        raise TemplateError("The template needs a text body.", field="text")
    html_body = _normalise_body(html) if html and html.strip() else None
    check_template(text, html_body, now=now)

    previous = session.scalar(select(func.max(TemplateVersion.version)).where(TemplateVersion.name == name))
    row = TemplateVersion(
        name=name,
        version=(previous or 0) + 1,
        title=title,
        language=language,
        tags=list(clean_tags),
        body_text=text,
        body_html=html_body,
        created_by=user,
        created_at=now,
    )
    try:
        # A savepoint, so losing the race below leaves the caller's transaction usable.
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        raise TemplateError(
            f"Someone saved {name} at the same moment; open it again to see their version first.",
            field="name",
        ) from None
    record_event(
        session,
        ticket_id=None,
        actor=user,
        action="template_saved",
        at=now,
        name=name,
        version=row.version,
        title=title,
        language=language,
    )
    return _from_row(row)


def check_template(text: str, html: str | None, *, now: datetime) -> None:
    """Compile both parts in the sandbox and render them with sample values, so a misspelt
    variable or a sandbox violation is refused when the template is saved, not when a
    customer is waiting."""
    variables = sample_variables(now=now)
    render_source(text, variables, part="text")
    if html is not None:
        render_source(html, variables, part="html")


def normalise_template_tags(tags: Sequence[str] | str) -> tuple[str, ...]:
    raw = tags.split(",") if isinstance(tags, str) else list(tags)
    out: dict[str, None] = {}
    for tag in raw:
        cleaned = re.sub(r"\s+", "-", str(tag).strip().lower().lstrip("#"))
        if not cleaned:
            continue
        if not _TAG.match(cleaned):
            raise TemplateError(
                f"{tag!r} is not a usable tag: use up to 40 lowercase letters, digits, '-' or '_'.",
                field="tags",
            )
        out.setdefault(cleaned, None)
    return tuple(out)


def parse_template_file(source: str, name: str) -> tuple[dict[str, Any], str]:
    """Split a `.txt` template into its front matter (a mapping) and its body."""
    found = _FRONT_MATTER.match(source)
    if found is None:
        return {}, source
    try:
        meta = yaml.safe_load(found.group(1)) if found.group(1).strip() else {}
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise TemplateError(f"The front matter of {name}.txt is not valid YAML: {problem}.") from None
    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        raise TemplateError(f"The front matter of {name}.txt must be title:, language: and tags: lines.")
    return meta, source[found.end() :]


def _valid_name(name: str) -> bool:
    return len(name) <= _NAME_LIMIT and bool(_NAME.match(name))


def _file_names(directory: Path) -> list[str]:
    if not directory.is_dir():
        return []
    return sorted(
        p.name[: -len(".txt")] for p in directory.glob("*.txt") if _valid_name(p.name[: -len(".txt")])
    )


def _load_file(directory: Path, name: str) -> ReplyTemplate | None:
    path = directory / f"{name}.txt"
    if not path.is_file():
        return None
    meta, body = parse_template_file(path.read_text(encoding="utf-8"), name)
    html_path = directory / f"{name}.html"
    html = html_path.read_text(encoding="utf-8") if html_path.is_file() else None
    # "password_reset.it" is Italian even when its front matter forgets to say so.
    suffix = name.rsplit(".", 1)[1] if "." in name else ""
    language = str(meta.get("language") or (suffix if _LANGUAGE.match(suffix) else "")).strip().lower()
    raw_tags = meta.get("tags") or ()
    if not isinstance(raw_tags, str | list | tuple):
        raise TemplateError(f"The tags of {name}.txt must be a list.")
    return ReplyTemplate(
        name=name,
        title=str(meta.get("title") or name).strip(),
        language=language,
        tags=normalise_template_tags(raw_tags),
        text=_normalise_body(body),
        html=_normalise_body(html) if html and html.strip() else None,
        source="file",
    )


def _newest_versions(session: Session) -> list[ReplyTemplate]:
    newest = (
        select(TemplateVersion.name, func.max(TemplateVersion.version).label("version"))
        .group_by(TemplateVersion.name)
        .subquery()
    )
    rows = session.scalars(
        select(TemplateVersion).join(
            newest,
            (TemplateVersion.name == newest.c.name) & (TemplateVersion.version == newest.c.version),
        )
    )
    return [_from_row(row) for row in rows]


def _from_row(row: TemplateVersion) -> ReplyTemplate:
    return ReplyTemplate(
        name=row.name,
        title=row.title,
        language=row.language,
        tags=tuple(row.tags or ()),
        text=row.body_text,
        html=row.body_html,
        source="db",
        version=row.version,
        updated_by=row.created_by,
        updated_at=row.created_at,
    )


def _normalise_body(body: str) -> str:
    # Slack and some editors send CRLF; the email layer decides line endings on the wire.
    return body.replace("\r\n", "\n").replace("\r", "\n")
