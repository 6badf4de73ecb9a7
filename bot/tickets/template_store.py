"""Reply templates as stored: Jinja2 files in `templates/`, overridden by versions managers
save from Slack.

A template is `<name>.txt` (a YAML front matter block with title, language and
tags, then the plain-text body) and, optionally, `<name>.html` beside it as the
HTML alternative. Managers' edits are stored as new `TemplateVersion` rows, never
overwrites; the newest one of a name wins over the file of that name.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.storage.models import TemplateVersion
from bot.tickets.events import record_event
from bot.tickets.template_vars import sample_variables
from bot.tickets.templates import ReplyTemplate, TemplateError, TemplateNotFound, render_source

log = logging.getLogger(__name__)

# One or more dot-separated segments ("password_reset.en"): no slashes and no "..",
# because a name read from Slack becomes a file name in the templates directory.
_NAME = re.compile(r"^[a-z0-9][a-z0-9_\-]*(?:\.[a-z0-9_\-]+)*$")
_NAME_LIMIT = 120  # TemplateVersion.name
_TITLE_LIMIT = 200
_LANGUAGE = re.compile(r"^[a-z]{2,3}(?:-[a-z0-9]{2,6})?$")  # BCP 47-ish: en, it, pt-br
_TAG = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,39}$")
_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)^---[ \t]*(?:\r?\n|\Z)", re.DOTALL | re.MULTILINE)


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
