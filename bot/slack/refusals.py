"""What to tell someone when Slack refuses the bot's answer to their click, in words that say
what happened and what to do: "went wrong on our side" would be neither true nor useful."""

from __future__ import annotations

from slack_sdk.errors import SlackApiError

_SENTENCES = {
    # A modal must open within 3 seconds of the click that asked for it.
    "expired_trigger_id": (
        "Slack gave up waiting for that form: it allows 3 seconds after a click, and this took "
        "longer. Nothing was changed; click again to open it."
    ),
    "trigger_exchanged": "That click was already used to open a form. Nothing was changed; click again.",
    # views.update with a hash: the modal changed between the click and the update.
    "hash_conflict": (
        "That form changed while your choice was being applied (two clicks at once?), so it was "
        "left as it was. If it does not show what you picked, pick it again."
    ),
}


def refusal_text(exc: Exception) -> str | None:
    """The sentence for a Slack refusal people can act on, or None for any other failure."""
    if not isinstance(exc, SlackApiError):
        return None
    data = exc.response.data if exc.response is not None else None
    error = data.get("error") if isinstance(data, dict) else None
    return _SENTENCES.get(str(error)) if error else None
