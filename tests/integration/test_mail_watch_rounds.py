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


def test_a_mail_appended_while_the_watcher_fetches_is_not_left_for_the_next_idle(
    any_imap, slack, database_url
):
    """The wake-up's EXISTS is dropped before the SEARCH; one that comes after it must still
    bring its mail in at once, not at the end of a 25-minute IDLE."""
    with ImapTap(any_imap.host, any_imap.port, user=any_imap.user, password=any_imap.password) as tap:
        env = bot_env(slack_url=slack.base_url, imap=tap, database_url=database_url)
        with running_bot(env) as bot:
            assert bot.settings.imap_idle_seconds >= 600
            tap.wait_for(lambda cs: any(c.verb == "IDLE" for c in cs))
            tap.hold("UID FETCH")
            any_imap.append(customer_mail(1, subject="First"))
            assert tap.held.wait(20), "the watcher never fetched the first mail"
            any_imap.append(customer_mail(2, subject="Second, during the fetch"))
            tap.release()
            posts = slack.wait_for(
                lambda c: c.method == "chat.postMessage" and c.args.get("channel") == CHANNEL,
                count=2,
                timeout=20,
            )
    assert ["First" in str(p.args.get("text")) for p in posts] == [True, False]
