"""Building the email a reply becomes: headers that thread, a subject that keeps its token.

Everything here is a pure function of stored values, so a reply tried again after a
failure is the very same email, Message-ID included, and a receiving server or mail
client that already has it can recognise the repeat.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

# Reply prefixes mail clients add, in the languages our customers write in:
# Re (most), Aw (German), Sv (Nordic), R/Rif/Ris (Italian), Antw (Dutch), Réf (French).
_REPLY_PREFIX = re.compile(
    r"^\s*(?:re|aw|sv|r|rif|ris|antw|réf|ref)\s*(?:\[\d+\]|\(\d+\))?\s*:\s*", re.IGNORECASE
)
_TOKEN = re.compile(r"\s*\[#\d{1,9}\]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
# Long threads grow References without bound; RFC 5322 §3.6.4 lets us keep the first
# (the thread's root) and the most recent ones, which is what mail clients thread on.
_REFERENCES_LIMIT = 20
_NAME_LIMIT = 100


def reply_subject(subject: str, ticket_number: int) -> str:
    """`Re: <original> [#123]`: one "Re:", one token, whatever the customer's client did."""
    base = _single_line(subject)
    base = _TOKEN.sub("", base)
    while True:
        stripped = _REPLY_PREFIX.sub("", base, count=1)
        if stripped == base:
            break
        base = stripped
    base = " ".join(base.split())
    return f"Re: {base} [#{ticket_number}]" if base else f"Re: [#{ticket_number}]"


def new_message_id(support_address: str) -> str:
    """A fresh Message-ID on our own domain, without angle brackets (as ids are stored)."""
    domain = support_address.rsplit("@", 1)[-1] or "localhost"
    return make_msgid(domain=domain).strip("<>")


def sender_name(agent_name: str, team: str = "Support") -> str:
    """The From display name: who wrote it, and that it comes from the team's address."""
    agent = _single_line(agent_name)[:_NAME_LIMIT]
    return f"{agent} via {team}" if agent else team


def thread_references(
    parent_references: Sequence[str], parent_in_reply_to: str | None, parent_id: str | None
) -> list[str]:
    """References for a reply to `parent`, per RFC 5322 §3.6.4: the parent's References
    (or, lacking those, its In-Reply-To), then the parent's own Message-ID."""
    chain = list(parent_references) or ([parent_in_reply_to] if parent_in_reply_to else [])
    if parent_id:
        chain.append(parent_id)
    seen: dict[str, None] = {}
    for msgid in chain:
        cleaned = msgid.strip().strip("<>")
        if cleaned and not _CONTROL.search(cleaned) and " " not in cleaned:
            seen.setdefault(cleaned, None)
    ids = list(seen)
    if len(ids) > _REFERENCES_LIMIT:
        ids = [ids[0], *ids[-(_REFERENCES_LIMIT - 1) :]]
    return ids


def compose_reply(
    *,
    from_name: str,
    from_address: str,
    to_address: str,
    to_name: str = "",
    subject: str,
    message_id: str,
    in_reply_to: str | None,
    references: Sequence[str],
    text: str,
    html: str | None = None,
    date: datetime,
    auto_submitted: bool | str = False,
    cc: Sequence[Address] = (),
) -> EmailMessage:
    """The reply as an RFC 5322 message; raises ValueError for an address that cannot be written.

    `cc` goes in the Cc header only: the envelope (RCPT TO) is the sender's business.
    """
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = Address(display_name=_single_line(from_name)[:_NAME_LIMIT], addr_spec=from_address)
    msg["To"] = Address(display_name=_single_line(to_name)[:_NAME_LIMIT], addr_spec=to_address)
    if cc:
        msg["Cc"] = tuple(
            Address(display_name=_single_line(a.display_name)[:_NAME_LIMIT], addr_spec=a.addr_spec)
            for a in cc
        )
    msg["Subject"] = _single_line(subject)
    msg["Date"] = format_datetime(date)
    msg["Message-ID"] = f"<{message_id.strip('<>')}>"
    if in_reply_to:
        msg["In-Reply-To"] = f"<{in_reply_to.strip('<>')}>"
    if references:
        msg["References"] = " ".join(f"<{r.strip('<>')}>" for r in references)
    if auto_submitted:
        # RFC 3834 §5: mark it so other responders don't answer it; the second header is
        # what Exchange reads to keep its out-of-office replies back.
        # A string names the kind: a survey is "auto-generated" (§5.1: not a reply to a message).
        msg["Auto-Submitted"] = auto_submitted if isinstance(auto_submitted, str) else "auto-replied"
        msg["X-Auto-Response-Suppress"] = "All"
    msg.set_content(_body(text))
    if html is not None:
        msg.add_alternative(html, subtype="html")
    return msg


def _body(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text if text.endswith("\n") else text + "\n"


def _single_line(value: str) -> str:
    # A header value with a line break in it would let outside text add headers.
    return " ".join(_CONTROL.sub(" ", value or "").split())
