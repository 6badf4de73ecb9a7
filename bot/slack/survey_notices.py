"""The line a ticket's thread shows when its customer answers the satisfaction survey."""

from __future__ import annotations

from bot.slack.render import escape
from bot.tickets.survey_answers import AnswerNotice


def survey_answer_notice(notice: AnswerNotice) -> str:
    """`record_answer`'s `write_notice`: the notice as Slack shows it."""
    return answer_notice(
        notice.solved,
        changed=notice.changed,
        fresh=notice.fresh,
        comment=notice.comment,
        agent=notice.agent,
        reopened=notice.reopened,
    )


def answer_notice(
    solved: bool, *, changed: bool, fresh: bool, comment: str, agent: str | None, reopened: bool = False
) -> str:
    """The thread's line for an answer: mrkdwn, with the customer's words escaped and quoted."""
    icon = ":+1:" if solved else ":-1:"
    verdict = "it is solved" if solved else "it is not solved yet"
    credit = f" (resolved by <@{agent}>)" if agent else ""
    if changed:
        line = f"{icon} The customer changed their answer: {verdict}{credit}."
    elif fresh:
        line = f"{icon} The customer says {verdict}{credit}."
    else:
        line = f":speech_balloon: The customer added a comment to their answer ({verdict})."
    if reopened:
        line += " The ticket is open again."
    if comment:
        quoted = "\n".join(f">{line}" if line else ">" for line in escape(comment).split("\n"))
        line = f"{line}\n{quoted}"
    return line
