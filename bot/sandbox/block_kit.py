"""Slack's documented Block Kit limits, checked the way Slack checks them: a message or
view that breaks one is refused whole (`invalid_blocks`), and a post retried with the
same blocks is refused forever. The Slack stand-in runs every post and view through
this, so each end-to-end test is also a Block Kit check; the test suite uses it directly
on renderers.

Limits are those of Slack's reference (docs.slack.dev/reference/block-kit): blocks,
block elements, composition objects and view objects. Only what supportbot uses is
modelled; an unknown block or element type is reported, so a new one gets its limits.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, Literal

Surface = Literal["message", "modal", "home"]

MAX_BLOCKS: dict[Surface, int] = {"message": 50, "modal": 100, "home": 100}
MESSAGE_TEXT = 40_000  # Slack truncates longer text; we treat it as a defect all the same
TEXT_OBJECT = 3000
SECTION_FIELD = 2000
SECTION_FIELDS = 10
HEADER_TEXT = 150
CONTEXT_ELEMENTS = 10
ACTIONS_ELEMENTS = 25
BUTTON_TEXT = 75
BUTTON_VALUE = 2000
BUTTON_URL = 3000
ID_LENGTH = 255  # action_id, block_id, callback_id
OPTION_TEXT = 75
OPTION_VALUE = 150
OPTION_GROUP_LABEL = 75
SELECT_OPTIONS = 100
OVERFLOW_OPTIONS = (1, 5)
PLACEHOLDER = 150
INPUT_LABEL = 2000
INPUT_HINT = 2000
TEXT_INPUT_MAX = 3000
VIEW_TITLE = 24
VIEW_BUTTON = 24
PRIVATE_METADATA = 3000
METADATA_EVENT_TYPE = 255  # not in the reference: a conservative bound on our own names

_TEXT_TYPES = ("plain_text", "mrkdwn")


def message_problems(text: Any, blocks: Any, metadata: Any = None) -> list[str]:
    """What Slack would refuse in a chat.postMessage / chat.update / response_url body."""
    problems: list[str] = []
    if text is not None and not isinstance(text, str):
        problems.append("text: not a string")
    elif text and len(text) > MESSAGE_TEXT:
        problems.append(f"text: {len(text)} characters, Slack keeps {MESSAGE_TEXT}")
    if blocks:
        problems += blocks_problems(blocks, "message")
    if metadata:
        problems += _metadata_problems(metadata)
    return problems


def view_problems(view: Any) -> list[str]:
    """What Slack would refuse in views.open / push / update / publish."""
    if not isinstance(view, dict):
        return ["view: not an object"]
    kind = view.get("type")
    if kind not in ("modal", "home"):
        return [f"view: unknown type {kind!r}"]
    problems = blocks_problems(view.get("blocks") or [], kind)
    metadata = view.get("private_metadata")
    if metadata is not None and len(str(metadata)) > PRIVATE_METADATA:
        problems.append(f"private_metadata: {len(str(metadata))} characters > {PRIVATE_METADATA}")
    problems += _id("callback_id", view.get("callback_id"))
    if kind == "modal":
        problems += _plain("title", view.get("title"), VIEW_TITLE, required=True)
        for key in ("submit", "close"):
            if key in view:
                problems += _plain(key, view[key], VIEW_BUTTON, required=True)
        inputs = any(isinstance(b, dict) and b.get("type") == "input" for b in view.get("blocks") or [])
        if inputs and "submit" not in view:
            problems.append("modal: input blocks need a submit button")
    return problems


def blocks_problems(blocks: Any, surface: Surface) -> list[str]:
    if not isinstance(blocks, list):
        return ["blocks: not a list"]
    problems: list[str] = []
    if len(blocks) > MAX_BLOCKS[surface]:
        problems.append(f"blocks: {len(blocks)} in a {surface}, Slack allows {MAX_BLOCKS[surface]}")
    block_ids: set[str] = set()
    for index, block in enumerate(blocks):
        where = f"blocks[{index}]"
        if not isinstance(block, dict):
            problems.append(f"{where}: not an object")
            continue
        block_id = block.get("block_id")
        if block_id is not None:
            if block_id in block_ids:
                problems.append(f"{where}: block_id {block_id!r} used twice")
            block_ids.add(str(block_id))
        problems += [f"{where}.{p}" for p in _block(block, surface)]
    return problems


def text_objects(value: Any) -> Iterator[dict[str, Any]]:
    """Every text object (plain_text or mrkdwn) anywhere in blocks or a view."""
    if isinstance(value, dict):
        if value.get("type") in _TEXT_TYPES and isinstance(value.get("text"), str):
            yield value
            return
        for item in value.values():
            yield from text_objects(item)
    elif isinstance(value, list):
        for item in value:
            yield from text_objects(item)


# -- blocks ------------------------------------------------------------------------------


def _block(block: dict[str, Any], surface: Surface) -> list[str]:
    kind = block.get("type")
    problems = _id("block_id", block.get("block_id"))
    if kind == "section":
        if "text" in block:
            problems += _text("text", block["text"], TEXT_OBJECT, required=True)
        fields = block.get("fields")
        if fields is not None:
            if not isinstance(fields, list) or not 1 <= len(fields) <= SECTION_FIELDS:
                problems.append(f"fields: 1 to {SECTION_FIELDS} items")
            else:
                for i, item in enumerate(fields):
                    problems += _text(f"fields[{i}]", item, SECTION_FIELD, required=True)
        if "text" not in block and not fields:
            problems.append("section: needs text or fields")
        if "accessory" in block:
            problems += [f"accessory.{p}" for p in _element(block["accessory"])]
    elif kind == "header":
        problems += _plain("text", block.get("text"), HEADER_TEXT, required=True)
    elif kind == "context":
        elements = block.get("elements")
        if not isinstance(elements, list) or not 1 <= len(elements) <= CONTEXT_ELEMENTS:
            problems.append(f"elements: 1 to {CONTEXT_ELEMENTS} items")
        else:
            for i, item in enumerate(elements):
                problems += _text(f"elements[{i}]", item, TEXT_OBJECT, required=True)
    elif kind == "actions":
        elements = block.get("elements")
        if not isinstance(elements, list) or not 1 <= len(elements) <= ACTIONS_ELEMENTS:
            problems.append(f"elements: 1 to {ACTIONS_ELEMENTS} items")
        else:
            for i, item in enumerate(elements):
                problems += [f"elements[{i}].{p}" for p in _element(item)]
    elif kind == "input":
        if surface == "message":
            problems.append("input: only in modals and App Home")
        problems += _plain("label", block.get("label"), INPUT_LABEL, required=True)
        if "hint" in block:
            problems += _plain("hint", block["hint"], INPUT_HINT, required=True)
        problems += [f"element.{p}" for p in _element(block.get("element"))]
    elif kind == "divider":
        pass
    else:
        problems.append(f"unknown block type {kind!r}")
    return problems


def _element(element: Any) -> list[str]:
    if not isinstance(element, dict):
        return ["not an object"]
    kind = element.get("type")
    problems = _id("action_id", element.get("action_id"))
    if "placeholder" in element:
        problems += _plain("placeholder", element["placeholder"], PLACEHOLDER, required=True)
    if kind == "button":
        problems += _plain("text", element.get("text"), BUTTON_TEXT, required=True)
        problems += _length("value", element.get("value"), BUTTON_VALUE)
        problems += _length("url", element.get("url"), BUTTON_URL)
        if element.get("style") not in (None, "primary", "danger"):
            problems.append(f"style: {element.get('style')!r}")
    elif kind == "overflow":
        options = element.get("options")
        low, high = OVERFLOW_OPTIONS
        if not isinstance(options, list) or not low <= len(options) <= high:
            problems.append(f"options: {low} to {high} items")
        else:
            problems += _options("options", options)
    elif kind in ("static_select", "multi_static_select"):
        problems += _select(element)
    elif kind == "plain_text_input":
        max_length = element.get("max_length")
        if max_length is not None and not 1 <= int(max_length) <= TEXT_INPUT_MAX:
            problems.append(f"max_length: {max_length} outside 1..{TEXT_INPUT_MAX}")
        limit = min(int(max_length), TEXT_INPUT_MAX) if max_length else TEXT_INPUT_MAX
        problems += _length("initial_value", element.get("initial_value"), limit)
    elif kind in ("users_select", "url_text_input"):
        pass
    elif kind == "file_input":
        # Slack's file_input takes 1 to 10 files (max_files, default 10) of the listed types.
        max_files = element.get("max_files", 10)
        if not isinstance(max_files, int) or not 1 <= max_files <= 10:
            problems.append(f"max_files: {max_files!r} outside 1..10")
        if not isinstance(element.get("filetypes", []), list):
            problems.append("filetypes: a list of extensions")
    else:
        problems.append(f"unknown element type {kind!r}")
    return problems


def _select(element: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    options, groups = element.get("options"), element.get("option_groups")
    if (options is None) == (groups is None):
        return ["select: exactly one of options and option_groups"]
    values: list[str] = []
    if options is not None:
        if not isinstance(options, list) or not 1 <= len(options) <= SELECT_OPTIONS:
            problems.append(f"options: 1 to {SELECT_OPTIONS} items")
        else:
            problems += _options("options", options)
            values = [str(o.get("value")) for o in options if isinstance(o, dict)]
    else:
        if not isinstance(groups, list) or not 1 <= len(groups) <= SELECT_OPTIONS:
            problems.append(f"option_groups: 1 to {SELECT_OPTIONS} items")
        else:
            for i, group in enumerate(groups):
                if not isinstance(group, dict):
                    problems.append(f"option_groups[{i}]: not an object")
                    continue
                problems += _plain(f"option_groups[{i}].label", group.get("label"), OPTION_GROUP_LABEL)
                inner = group.get("options")
                if not isinstance(inner, list) or not 1 <= len(inner) <= SELECT_OPTIONS:
                    problems.append(f"option_groups[{i}].options: 1 to {SELECT_OPTIONS}")
                    continue
                problems += _options(f"option_groups[{i}].options", inner)
                values += [str(o.get("value")) for o in inner if isinstance(o, dict)]
    initial = [element["initial_option"]] if "initial_option" in element else []
    initial += list(element.get("initial_options") or [])
    for i, option in enumerate(initial):
        problems += _options(f"initial[{i}]", [option])
        # Slack refuses an initial option that is not one of the options, exactly.
        if isinstance(option, dict) and str(option.get("value")) not in values:
            problems.append(f"initial[{i}]: not among the options")
    return problems


def _options(where: str, options: list[Any]) -> list[str]:
    problems: list[str] = []
    for i, option in enumerate(options):
        if not isinstance(option, dict):
            problems.append(f"{where}[{i}]: not an object")
            continue
        problems += _plain(f"{where}[{i}].text", option.get("text"), OPTION_TEXT, required=True)
        value = option.get("value")
        if not isinstance(value, str) or not value:
            problems.append(f"{where}[{i}].value: missing")
        else:
            problems += _length(f"{where}[{i}].value", value, OPTION_VALUE)
    return problems


# -- composition objects and strings ----------------------------------------------------------


def _text(where: str, obj: Any, limit: int, *, required: bool = False) -> list[str]:
    if obj is None:
        return [f"{where}: missing"] if required else []
    if not isinstance(obj, dict) or obj.get("type") not in _TEXT_TYPES:
        return [f"{where}: not a text object"]
    text = obj.get("text")
    if not isinstance(text, str) or not text:
        # Slack refuses an empty text object: a renderer must say something ("—").
        return [f"{where}: empty text"]
    if len(text) > limit:
        return [f"{where}: {len(text)} characters > {limit}"]
    return []


def _plain(where: str, obj: Any, limit: int, *, required: bool = False) -> list[str]:
    if isinstance(obj, dict) and obj.get("type") != "plain_text":
        return [f"{where}: must be plain_text"]
    return _text(where, obj, limit, required=required)


def _length(where: str, value: Any, limit: int) -> list[str]:
    if value is None:
        return []
    if len(str(value)) > limit:
        return [f"{where}: {len(str(value))} characters > {limit}"]
    return []


def _id(where: str, value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, str) or not value or len(value) > ID_LENGTH:
        return [f"{where}: 1 to {ID_LENGTH} characters"]
    return []


def _metadata_problems(metadata: Any) -> list[str]:
    if isinstance(metadata, str):
        try:
            metadata = json.loads(metadata)
        except ValueError:
            return ["metadata: not JSON"]
    if not isinstance(metadata, dict):
        return ["metadata: not an object"]
    event_type = metadata.get("event_type")
    problems: list[str] = []
    if not isinstance(event_type, str) or not event_type or len(event_type) > METADATA_EVENT_TYPE:
        problems.append("metadata.event_type: missing or too long")
    if not isinstance(metadata.get("event_payload"), dict):
        problems.append("metadata.event_payload: not an object")
    return problems
