"""A customer's data as one ZIP (right of access): every row about them as JSON, their emails
as `.eml`, their attachments, and a summary a person can read.

Which rows are "about them" is worked out from the schema, not listed by hand, so a table
added later is exported too: the customer's row (matched exactly on the stored, lower-cased
address), then every row that points at one already held through a foreign key (their
tickets, those tickets' messages, attachments, events, surveys, pages, outbox rows …), and
the rows that name the address itself (automatic replies, a spam block, a survey opt-out,
mail they sent into someone else's ticket). Staff-only tables are left out even when they
point at a held row: a night's pay for a page is about the person paged, not the customer.

The ZIP is written to a file as it is built, one email at a time, so a customer with years of
mail costs disk, not memory.
"""

from __future__ import annotations

import base64
import io
import json
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import Column, LargeBinary, String, Table, and_, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from bot.mail.attachments import attachment_parts
from bot.outbox.queue import SLACK_CUSTOMER_EXPORT, enqueue, files_lane, slack_lane
from bot.privacy.holdings import customer_address
from bot.storage.models import Attachment, Base, Message, Ticket

FORMAT = "supportbot-customer-export/1"
# Pointing at a held row does not make a row about the customer.
STAFF_ONLY_TABLES = frozenset({"ledger_entries", "rota_duties", "duty_swaps", "rota_members", "time_off"})
# Columns that hold a customer's address, beyond any column named like one in a later table.
_ADDRESS_COLUMN_NAMES = frozenset({"email", "address", "from_address", "customer_email"})
_CHUNK = 500
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass
class ExportContents:
    """What went into the ZIP: rows per table, and the files beside the JSON."""

    address: str
    rows: dict[str, int] = field(default_factory=dict)
    emails: int = 0
    attachments: int = 0  # attachment files with their bytes
    attachment_records: int = 0  # attachments whose bytes could not be found (records only)

    @property
    def anything(self) -> bool:
        return any(self.rows.values())


def export_filename(address: str, now: datetime, serial: int | None = None) -> str:
    """The ZIP's name: whose, when, and (`serial`) which request, so two never share one."""
    tail = f"-{serial}" if serial is not None else ""
    return f"customer-data-{_safe(address, 60)}-{now:%Y%m%d-%H%M}{tail}.zip"


def request_export(session: Session, typed: str, *, manager: str, now: datetime) -> str:
    """Queue the export of a customer's data to `manager`'s DM; the address as stored.

    The ZIP is built when the outbox delivers the row (bot/slack/export_delivery.py), in its
    files lane: the asker is answered at once, and a crash meanwhile loses nothing.
    Raises NotAnAddress.
    """
    address = customer_address(typed)
    enqueue(
        session,
        kind=SLACK_CUSTOMER_EXPORT,
        lane=files_lane(slack_lane(manager)),
        now=now,
        payload={"user": manager, "address": address},
    )
    return address


def write_export(
    session: Session, typed: str, target: str | Path | BinaryIO, *, now: datetime
) -> ExportContents:
    """Write the customer's ZIP to `target` (a path or a binary file). Raises NotAnAddress."""
    address = customer_address(typed)
    contents = ExportContents(address)
    held = _held_ids(session, address)
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        files = _write_mail(session, archive, held.get("messages", set()), contents)
        _write_rows(session, archive, address, held, files, contents, now)
        with archive.open("summary.md", "w") as raw, io.TextIOWrapper(raw, encoding="utf-8") as out:
            _write_summary(session, out, address, held, contents, now)
    return contents


# -- which rows ----------------------------------------------------------------------------


def _tables() -> list[Table]:
    return [t for t in Base.metadata.sorted_tables if t.name not in STAFF_ONLY_TABLES]


def _single_key(table: Table) -> Column[Any] | None:
    keys = list(table.primary_key.columns)
    return keys[0] if len(keys) == 1 and keys[0].type.python_type is int else None


def _conditions(table: Table, address: str, held: dict[str, set[int]]) -> list[Any]:
    """Conditions any one of which makes a row of `table` about the customer: (column, ids) to
    match by chunks, or a plain condition on the address."""
    found: list[Any] = []
    for column in table.columns:
        for key in column.foreign_keys:
            target = key.column
            ids = held.get(target.table.name)
            if ids and _single_key(target.table) is target:
                found.append((column, ids))
        if column.name in _ADDRESS_COLUMN_NAMES and isinstance(column.type, String):
            found.append(column == address)
    if table.name == "events":
        found.append(table.c.actor == f"customer:{address}")
    if table.name == "blocked_senders":
        found.append(and_(table.c.kind == "address", table.c.value == address))
    if table.name == "urgency_rules":  # a manager's rule for mail from this very sender
        found.append(and_(table.c.kind == "sender", table.c.pattern == address))
    return found


def _where(conditions: list[Any]) -> Iterator[ColumnElement[bool]]:
    """One WHERE per query: the address conditions together, and each id list in chunks."""
    plain = [c for c in conditions if not isinstance(c, tuple)]
    if plain:
        yield or_(*plain)
    for column, ids in (c for c in conditions if isinstance(c, tuple)):
        ordered = sorted(ids)
        for start in range(0, len(ordered), _CHUNK):
            yield column.in_(ordered[start : start + _CHUNK])


def _held_ids(session: Session, address: str) -> dict[str, set[int]]:
    """The ids of the rows about the customer, table by table, parents before children."""
    held: dict[str, set[int]] = {}
    for table in _tables():
        key = _single_key(table)
        conditions = _conditions(table, address, held)
        if key is None or not conditions:
            continue
        ids: set[int] = set()
        for where in _where(conditions):
            ids.update(int(i) for i in session.execute(select(key).where(where)).scalars())
        if ids:
            held[table.name] = ids
    return held


def _rows(
    session: Session, table: Table, address: str, held: dict[str, set[int]]
) -> Iterator[dict[str, Any]]:
    """The table's rows about the customer, once each, binary columns left out (their bytes go
    into files of their own), in key order within each query."""
    conditions = _conditions(table, address, held)
    if not conditions:
        return
    columns = [c for c in table.columns if not isinstance(c.type, LargeBinary)]
    keys = list(table.primary_key.columns)
    seen: set[tuple[Any, ...]] = set()
    for where in _where(conditions):
        for row in session.execute(select(*columns).where(where).order_by(*keys)).mappings():
            identity = tuple(row[k.name] for k in keys) if keys else tuple(row.values())
            if identity in seen:
                continue
            seen.add(identity)
            yield dict(row)


# -- the files -------------------------------------------------------------------------------


def _safe(text: str, limit: int) -> str:
    return _UNSAFE.sub("_", text).strip("._")[:limit] or "file"


def _eml_name(message_id: int, ticket_number: int) -> str:
    return f"emails/ticket-{ticket_number}/message-{message_id}.eml"


def _write_mail(
    session: Session, archive: zipfile.ZipFile, message_ids: set[int], contents: ExportContents
) -> dict[tuple[str, int], str]:
    """Each held message's original source as `.eml`, and its attachments' bytes, read from
    the source one mail at a time; the file each row's bytes went to, by (table, id)."""
    files: dict[tuple[str, int], str] = {}
    ordered = sorted(message_ids)
    for start in range(0, len(ordered), _CHUNK):
        chunk = ordered[start : start + _CHUNK]
        numbers = dict(
            session.execute(
                select(Message.id, Ticket.number)
                .join(Ticket, Ticket.id == Message.ticket_id)
                .where(Message.id.in_(chunk), Message.raw.is_not(None))
            ).all()
        )
        for message_id in chunk:
            if message_id not in numbers:
                continue
            raw = session.scalar(select(Message.raw).where(Message.id == message_id)) or b""
            name = _eml_name(message_id, int(numbers[message_id]))
            archive.writestr(name, raw)
            files[("messages", message_id)] = name
            contents.emails += 1
            _write_attachments(session, archive, message_id, raw, files, contents)
            # The raw source and its parts leave memory before the next mail is read.
            del raw
    return files


def _write_attachments(
    session: Session,
    archive: zipfile.ZipFile,
    message_id: int,
    raw: bytes,
    files: dict[tuple[str, int], str],
    contents: ExportContents,
) -> None:
    records = session.execute(
        select(Attachment.id, Attachment.filename, Attachment.size)
        .where(Attachment.message_id == message_id)
        .order_by(Attachment.id)
    ).all()
    if not records:
        return
    parts = attachment_parts(raw)
    unused = list(range(len(parts)))
    for index, (attachment_id, filename, size) in enumerate(records):
        # Found by position, checked by name and size, as the upload to Slack finds them.
        order = ([index] if index < len(parts) else []) + unused
        match = next(
            (
                i
                for i in order
                if i in unused and parts[i].filename[:500] == filename and parts[i].size == size
            ),
            None,
        )
        if match is None:
            contents.attachment_records += 1
            continue
        unused.remove(match)
        name = f"attachments/message-{message_id}/{attachment_id}-{_safe(filename, 120)}"
        archive.writestr(name, parts[match].data)
        files[("attachments", attachment_id)] = name
        contents.attachments += 1


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return {"base64": base64.b64encode(value).decode()}
    return value


def _write_rows(
    session: Session,
    archive: zipfile.ZipFile,
    address: str,
    held: dict[str, set[int]],
    files: dict[tuple[str, int], str],
    contents: ExportContents,
    now: datetime,
) -> None:
    """data.json, written row by row: {"tables": {name: [row, …]}}, every table listed."""
    with archive.open("data.json", "w") as raw, io.TextIOWrapper(raw, encoding="utf-8") as out:
        head = {"format": FORMAT, "address": address, "exported_at": now.isoformat()}
        out.write(json.dumps(head, ensure_ascii=False)[:-1] + ', "tables": {')
        for number, table in enumerate(_tables()):
            out.write(("," if number else "") + f"\n{json.dumps(table.name)}: [")
            count = 0
            key = _single_key(table)
            for row in _rows(session, table, address, held):
                data = {name: _jsonable(value) for name, value in row.items()}
                if key is not None and (file := files.get((table.name, int(row[key.name])))) is not None:
                    # The bytes themselves: the .eml of a message, the file of an attachment.
                    data["file_in_this_zip"] = file
                out.write(("," if count else "") + "\n  " + json.dumps(data, ensure_ascii=False))
                count += 1
            out.write("]")
            contents.rows[table.name] = count
        out.write("\n}}\n")


def _write_summary(
    session: Session,
    out: io.TextIOWrapper,
    address: str,
    held: dict[str, set[int]],
    contents: ExportContents,
    now: datetime,
) -> None:
    out.write(f"# The data we hold about {address}\n\nExported {now:%Y-%m-%d %H:%M} UTC.\n\n")
    if not contents.anything:
        out.write("We hold no data about this address.\n")
        return
    out.write("## What this archive holds\n\n")
    out.write("- `data.json`: every stored record about you, table by table (machine-readable).\n")
    out.write(f"- `emails/`: {contents.emails} emails as their original `.eml` files.\n")
    out.write(f"- `attachments/`: {contents.attachments} attachments.\n")
    if contents.attachment_records:
        out.write(
            f"- {contents.attachment_records} attachments could not be read back from the stored email; "
            "their records (name, type, size) are in `data.json`.\n"
        )
    out.write("\n## Records, by kind\n\n")
    for table, count in contents.rows.items():
        if count:
            out.write(f"- {table.replace('_', ' ')}: {count}\n")
    ticket_ids = sorted(held.get("tickets", set()))
    if not ticket_ids:
        return
    out.write("\n## Conversations\n")
    for start in range(0, len(ticket_ids), _CHUNK):
        tickets = session.scalars(
            select(Ticket).where(Ticket.id.in_(ticket_ids[start : start + _CHUNK])).order_by(Ticket.id)
        )
        for ticket in tickets:
            out.write(
                f"\n### #{ticket.number}: {ticket.subject or '(no subject)'}\n\n"
                f"Opened {ticket.created_at:%Y-%m-%d %H:%M} UTC, now {ticket.status}.\n\n"
            )
            messages = session.execute(
                select(
                    Message.sent_at,
                    Message.created_at,
                    Message.direction,
                    Message.from_address,
                    Message.subject,
                )
                .where(Message.ticket_id == ticket.id)
                .order_by(Message.id)
            )
            for sent_at, created_at, direction, sender, subject in messages:
                who = {"in": f"from {sender or 'you'}", "out": "our reply", "note": "internal note"}.get(
                    direction, direction
                )
                moment = sent_at or created_at
                out.write(f"- {moment:%Y-%m-%d %H:%M}: {who}: {subject or '(no subject)'}\n")
