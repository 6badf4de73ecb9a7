"""What the watcher asks the IMAP server for each new mail, seen on the wire (a tap in front
of pymap and of Dovecot): the round trips between an IDLE wake-up and the next IDLE are
time the mail, and the next one, wait for."""

from __future__ import annotations

import pytest

from tests.support.harness import CHANNEL, bot_env, running_bot, wait_until
from tests.support.imap_tap import Command, ImapTap
from tests.support.mail import customer_mail

pytestmark = pytest.mark.timeout(120)


def round_after(commands: list[Command], start: int, connection: int) -> list[str] | None:
    """The watcher's verbs from `start` up to the IDLE that follows its FETCH, once it has."""
    verbs = [c.verb for c in commands[start:] if c.connection == connection]
    if "UID FETCH" not in verbs:
        return None
    last_fetch = len(verbs) - 1 - verbs[::-1].index("UID FETCH")
    if "IDLE" not in verbs[last_fetch:]:
        return None
    return verbs[: verbs.index("IDLE", last_fetch) + 1]


def test_each_new_mail_costs_one_search_and_one_fetch_before_the_watcher_idles_again(
    any_imap, slack, database_url
):
    with ImapTap(any_imap.host, any_imap.port, user=any_imap.user, password=any_imap.password) as tap:
        env = bot_env(slack_url=slack.base_url, imap=tap, database_url=database_url)
        with running_bot(env):
            watching = tap.wait_for(lambda cs: any(c.verb == "IDLE" for c in cs))
            connection = next(c.connection for c in watching if c.verb == "IDLE")
            rounds = []
            for n in range(3):
                seen = len(tap.commands())
                any_imap.append(customer_mail(n, subject=f"Round {n}"))
                commands = tap.wait_for(lambda cs, s=seen: round_after(cs, s, connection) is not None)
                rounds.append(round_after(commands, seen, connection))
                wait_until(
                    lambda k=n + 1: (
                        len([c for c in slack.calls("chat.postMessage") if c.args.get("channel") == CHANNEL])
                        >= k
                    ),
                    what=f"the post of mail {n}",
                )
    # The EXISTS that ended the IDLE is answered by the SEARCH that follows it; it must
    # not send the watcher round again (a second SEARCH while the post goes out).
    assert rounds == [["DONE", "UID SEARCH", "UID FETCH", "IDLE"]] * 3
