"""Block Kit for the modals staff work in: reply, tags, reassign, and the template editor.

Outside text (email, templates typed by people) is escaped with `render.escape`
wherever it lands in mrkdwn; plain_text fields are shown by Slack as written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bot.slack.render import Block, escape, fit, modal, truncate

# The reply form keeps the rendered template's digest: the rule using it is the domain's.
from bot.tickets.agent_reply import text_digest as text_digest

REPLY_CALLBACK = "reply_submit"
TAGS_CALLBACK = "tags_submit"
REASSIGN_CALLBACK = "reassign_submit"
TEMPLATE_EDIT_CALLBACK = "template_submit"

ACTION_PICK_TEMPLATE = "reply_template"
BODY_ACTION = "body"
# The reply's Cc field. Its block_id never changes, so Slack keeps what the agent typed
# there when a picked template re-renders the modal (and the handler passes it back too).
CC_BLOCK = "reply_cc"
CC_ACTION = "cc"
NEW_TAGS_BLOCK = "new_tags"
TAGS_BLOCK = "tags"
ASSIGNEE_BLOCK = "assignee"

# Slack limits: plain_text_input 3,000 characters, option text 75, modal title 24.
INPUT_LIMIT = 3000
_QUOTE_LIMIT = 1200
_HINT_LIMIT = 2000  # an input block's hint


@dataclass(frozen=True)
class TemplateChoice:
    name: str
    title: str
    language: str


def body_block_id(revision: int, part: int = 0) -> str:
    # Slack keeps what was typed per block_id: a new id is the only way to put new
    # text into the editor with views.update.
    return f"reply_body:{revision}" if part == 0 else f"reply_body:{revision}:{part}"


# A reply longer than one text box (Slack: 3,000 characters) is shown across several,
# and sent as one text, joined as it was split: never cut.
REPLY_PARTS = 10
REPLY_LIMIT = REPLY_PARTS * INPUT_LIMIT
# The template editor's Text and HTML fields: a modal holds 100 blocks.
TEMPLATE_PARTS = 40


def split_text(text: str, limit: int = INPUT_LIMIT) -> list[str]:
    """`text` in pieces of at most `limit` characters that join ("".join) back to it exactly:
    each cut after a line break where there is one, else after a space, else anywhere."""
    parts: list[str] = []
    while len(text) > limit:
        window = text[:limit]
        cut = window.rfind("\n") + 1 or window.rfind(" ") + 1 or limit
        parts.append(text[:cut])
        text = text[cut:]
    return [*parts, text] if text or not parts else parts


def joined_value(view: dict[str, Any], block_id: str, action_id: str = "value") -> str:
    """A long text shown across several inputs (`block_id`, `block_id:1`, …), joined back."""
    values = ((view.get("state") or {}).get("values") or {}) if isinstance(view, dict) else {}
    text = str(state_value(view, block_id, action_id) or "")
    part = 1
    while f"{block_id}:{part}" in values:
        text += str(state_value(view, f"{block_id}:{part}", action_id) or "")
        part += 1
    return text


def typed_reply(view: dict[str, Any], revision: int) -> str:
    """The reply as the agent has it: every part of the editor, joined."""
    return joined_value(view, body_block_id(revision), BODY_ACTION)


def reply_modal(
    *,
    ticket_id: int,
    number: int,
    customer: str,
    subject: str,
    last_message: str,
    templates: Sequence[TemplateChoice],
    body: str = "",
    revision: int = 0,
    template: str | None = None,
    template_version: int | None = None,
    rendered_digest: str | None = None,
    error: str | None = None,
    cc: str = "",
    cc_hint: str = "",
) -> dict[str, Any]:
    """The reply modal. `customer` is who the reply goes to (To); `cc` prefills the Cc
    field (plain text, shown as written) and `cc_hint` says where it came from."""
    metadata = {
        "ticket_id": ticket_id,
        "template": template,
        "version": template_version,
        "digest": rendered_digest,
        "revision": revision,
    }
    shown_subject = truncate(subject or "(no subject)", 200)
    blocks: list[Block] = [
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": f"To *{escape(truncate(customer, 400))}* · Re: {escape(shown_subject)}",
                }
            ],
        }
    ]
    if last_message.strip():
        quoted = escape(truncate(last_message.strip(), _QUOTE_LIMIT))
        blocks.append(
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": fit("\n".join("&gt; " + line for line in quoted.splitlines())),
                },
            }
        )
    if templates:
        blocks.append(
            {
                "type": "actions",
                "block_id": "template_pick",
                "elements": [_template_select(templates, template)],
            }
        )
    if error:
        blocks.append(
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": fit(f":warning: {escape(truncate(error, 1000))}")}],
            }
        )
    parts = split_text(body[:REPLY_LIMIT])
    if len(parts) > 1:
        blocks.append(
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": f"This reply is {len(body):,} characters and a Slack text box holds "
                        f"{INPUT_LIMIT:,}, so it is shown in {len(parts)} boxes. It goes out as one "
                        "message, the boxes joined in order.",
                    }
                ],
            }
        )
    for index, part in enumerate(parts):
        element = _limited_input(
            BODY_ACTION, "Write to the customer, or pick a template above", part, multiline=True
        )
        label = "Message" if len(parts) == 1 else f"Message (part {index + 1} of {len(parts)})"
        box: Block = {
            "type": "input",
            "block_id": body_block_id(revision, index),
            "label": {"type": "plain_text", "text": label},
            "element": element,
        }
        if index:
            box["optional"] = True
        blocks.append(box)
    cc_element = _limited_input(CC_ACTION, "Nobody; add addresses separated by commas", cc, multiline=False)
    blocks.append(
        {
            "type": "input",
            "block_id": CC_BLOCK,
            "optional": True,
            "label": {"type": "plain_text", "text": "Cc"},
            "hint": {
                "type": "plain_text",
                "text": truncate(
                    cc_hint or "Who else gets this reply. Remove anyone who shouldn't.", _HINT_LIMIT
                ),
            },
            "element": cc_element,
        }
    )
    return modal(REPLY_CALLBACK, f"Reply to #{number}", "Send", blocks, metadata)


def _limited_input(action_id: str, placeholder: str, initial: str | None, *, multiline: bool) -> Block:
    """A text box held to Slack's limit, prefilled with what the person typed before (cut to fit)."""
    element: Block = {
        "type": "plain_text_input",
        "action_id": action_id,
        "multiline": multiline,
        "max_length": INPUT_LIMIT,
        "placeholder": {"type": "plain_text", "text": placeholder},
    }
    if initial:
        # Callers split longer text (split_text); a Cc list is fitted by its caller.
        element["initial_value"] = initial[:INPUT_LIMIT]
    return element


def _template_select(templates: Sequence[TemplateChoice], selected: str | None) -> Block:
    by_language: dict[str, list[TemplateChoice]] = {}
    for choice in templates:
        by_language.setdefault(choice.language or "other", []).append(choice)

    def option(choice: TemplateChoice) -> Block:
        return {
            "text": {"type": "plain_text", "text": truncate(choice.title or choice.name, 75)},
            "value": choice.name,
        }

    element: Block = {
        "type": "static_select",
        "action_id": ACTION_PICK_TEMPLATE,
        "placeholder": {"type": "plain_text", "text": "Pick a template"},
        # Slack allows 100 groups of 100 options; option groups keep languages apart.
        "option_groups": [
            {
                "label": {"type": "plain_text", "text": truncate(language.upper(), 75)},
                "options": [option(c) for c in group[:100]],
            }
            for language, group in sorted(by_language.items())[:100]
        ],
    }
    shown = {o["value"] for g in element["option_groups"] for o in g["options"]}
    current = next((c for c in templates if c.name == selected and c.name in shown), None)
    if current is not None:
        element["initial_option"] = option(current)
    return element


def tags_modal(
    *, ticket_id: int, number: int, known: Sequence[str], current: Sequence[str]
) -> dict[str, Any]:
    def option(tag: str) -> Block:
        return {"text": {"type": "plain_text", "text": truncate(tag, 75)}, "value": tag}

    blocks: list[Block] = []
    if known:
        select: Block = {
            "type": "multi_static_select",
            "action_id": "pick",
            "placeholder": {"type": "plain_text", "text": "Choose tags"},
            "options": [option(t) for t in known[:100]],
        }
        chosen = [t for t in current if t in known[:100]]
        if chosen:
            select["initial_options"] = [option(t) for t in chosen]
        blocks.append(
            {
                "type": "input",
                "block_id": TAGS_BLOCK,
                "optional": True,
                "label": {"type": "plain_text", "text": "Tags"},
                "element": select,
            }
        )
    blocks.append(
        {
            "type": "input",
            "block_id": NEW_TAGS_BLOCK,
            "optional": True,
            "label": {"type": "plain_text", "text": "New tags"},
            "hint": {"type": "plain_text", "text": "Comma-separated, e.g. billing, refund"},
            "element": {"type": "plain_text_input", "action_id": "names"},
        }
    )
    return modal(TAGS_CALLBACK, f"Tags of #{number}", "Save", blocks, {"ticket_id": ticket_id})


def reassign_modal(*, ticket_id: int, number: int, owner: str | None) -> dict[str, Any]:
    element: Block = {"type": "users_select", "action_id": "user"}
    if owner:
        element["initial_user"] = owner
    assignee = {
        "type": "input",
        "block_id": ASSIGNEE_BLOCK,
        "label": {"type": "plain_text", "text": "New owner"},
        "element": element,
    }
    return modal(REASSIGN_CALLBACK, f"Reassign #{number}", "Reassign", [assignee], {"ticket_id": ticket_id})


@dataclass(frozen=True)
class TemplateDraft:
    name: str = ""
    title: str = ""
    language: str = "en"
    tags: tuple[str, ...] = ()
    text: str = ""
    html: str | None = None


def template_editor(draft: TemplateDraft, *, editing: bool) -> dict[str, Any]:
    """The template form. Text and HTML longer than one text box are shown across several
    (`text`, `text:1`, …; joined on save by `joined_value`), so saving never loses a tail."""

    def text_input(
        block: str,
        label: str,
        value: str,
        *,
        multiline: bool = False,
        optional: bool = False,
        hint: str | None = None,
    ) -> Block:
        element: Block = {"type": "plain_text_input", "action_id": "value", "multiline": multiline}
        if value:
            element["initial_value"] = value[:INPUT_LIMIT]
        block_def: Block = {
            "type": "input",
            "block_id": block,
            "optional": optional,
            "label": {"type": "plain_text", "text": label},
            "element": element,
        }
        if hint:
            block_def["hint"] = {"type": "plain_text", "text": hint}
        return block_def

    def long_input(
        block: str, label: str, value: str, *, optional: bool, hint: str | None = None
    ) -> list[Block]:
        parts = split_text(value)
        return [
            text_input(
                block if index == 0 else f"{block}:{index}",
                label if len(parts) == 1 else f"{label} (part {index + 1} of {len(parts)})",
                part,
                multiline=True,
                optional=optional or index > 0,
                hint=hint if index == 0 else None,
            )
            for index, part in enumerate(parts)
        ]

    title = "Edit template" if editing else "New template"
    metadata = {"editing": draft.name if editing else None}
    too_long = [
        label
        for label, value in (("Text", draft.text), ("HTML version", draft.html or ""))
        if len(split_text(value)) > TEMPLATE_PARTS
    ]
    if too_long:
        # Past what a modal can hold: say so rather than open a form that would cut it.
        notice = {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": f"`{escape(truncate(draft.name, 120))}` is too long to edit in Slack "
                f"({' and '.join(too_long)} over {TEMPLATE_PARTS * INPUT_LIMIT:,} characters). "
                "Edit its file in the templates folder instead.",
            },
        }
        view = modal(TEMPLATE_EDIT_CALLBACK, title, "Save", [notice], metadata)
        del view["submit"]  # nothing to save
        return view
    blocks = [
        text_input("name", "Name", draft.name, hint="Lowercase, e.g. password_reset.en"),
        text_input("title", "Title", draft.title),
        text_input("language", "Language", draft.language, hint="e.g. en, it"),
        text_input("tags", "Tags", ", ".join(draft.tags), optional=True, hint="Comma-separated"),
        *long_input(
            "text",
            "Text",
            draft.text,
            optional=False,
            hint="Jinja2: {{ customer_first_name }}, {{ ticket_number }}, {{ agent_name }}…",
        ),
        *long_input("html", "HTML version", draft.html or "", optional=True),
    ]
    return modal(TEMPLATE_EDIT_CALLBACK, title, "Save", blocks, metadata)


def state_value(view: dict[str, Any], block_id: str, action_id: str = "value") -> Any:
    """The submitted value of one input, whatever element it is."""
    element = (((view.get("state") or {}).get("values") or {}).get(block_id) or {}).get(action_id) or {}
    kind = element.get("type")
    if kind == "multi_static_select":
        return [o["value"] for o in element.get("selected_options") or []]
    if kind == "static_select":
        return (element.get("selected_option") or {}).get("value")
    if kind == "users_select":
        return element.get("selected_user")
    return element.get("value")
