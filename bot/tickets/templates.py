"""Reply templates: what one is, what goes wrong with one, and rendering it.

Template text is written by people and rendered with a customer's data, so it runs
in Jinja2's sandbox (`template_sandbox`) with StrictUndefined: a variable the ticket
doesn't have, a syntax error or a reach for Python internals is a
`TemplateRenderError` with a sentence the agent can act on, never a blank or a
traceback in the customer's email. Where templates are kept is `template_store`;
what they may use is `template_vars`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import jinja2.exceptions as jinja_errors

from bot.tickets.template_sandbox import (
    MAX_OUTPUT,
    RENDER_SECONDS,
    OutputTooLong,
    RenderTimeout,
    ReplySandbox,
    render_bounded,
    reply_environment,
)

_UNDEFINED_NAME = re.compile(r"^'([^']+)' is undefined$")
_MISSING_ATTRIBUTE = re.compile(r"has no attribute '([^']+)'$")

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


# Customer data is only ever escaped in the HTML part: in the text part "&" must stay "&".
_ENVIRONMENTS: dict[Part, ReplySandbox] = {
    "text": reply_environment(autoescape=False),
    "html": reply_environment(autoescape=True),
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
    try:
        rendered = render_bounded(compiled, variables)
    except RenderTimeout:
        raise TemplateRenderError(
            f"{label} takes too long to render (over {RENDER_SECONDS:g} s); a reply template never "
            "needs that many loops.",
            field=part,
        ) from None
    except OutputTooLong:
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
