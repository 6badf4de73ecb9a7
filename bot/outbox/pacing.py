"""How fast a lane may go, and which of its waiting rows goes next.

Plain values and functions of the time they are given, so the policy is tested with a
fake clock; `bot.outbox.worker` applies them to the rows in the database.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import NamedTuple

from bot.outbox.queue import SLACK_PAGE, SLACK_THREAD_MESSAGE, SLACK_TICKET_NOTICE, SLACK_TICKET_POST

# Slack: "chat.postMessage generally allows posting one message per second per channel",
# "Posting messages: 1 per second. Short bursts >1 allowed"
# (https://docs.slack.dev/apis/web-api/rate-limits). So a lane earns one token a second
# (SLACK_PACE_SECONDS) and holds a few: the first post into a channel quiet for a second
# goes out at once, a burst is paced down to the sustained rate after LANE_BURST posts.
LANE_BURST = 3

# A thread post (a staff reply, a follow-up mail, a notice) lets new tickets' posts go
# first, but no longer than this: then it goes before any newer ticket, so a thread is
# never starved by a stream of new mail.
MAX_THREAD_WAIT = timedelta(seconds=30)

# What a new ticket's post may overtake: posts into existing threads, whose order relative
# to other tickets' posts nobody reads. Each is queued after its own ticket's post (a
# lower id), so it can never be overtaken by a row it depends on.
OVERTAKABLE_KINDS = (SLACK_THREAD_MESSAGE, SLACK_TICKET_NOTICE)

# Everything else is a barrier no new ticket overtakes: pre-rendered posts (a burst summary
# must come before the tickets it announces), channel settings, kinds added later.
NOT_BARRIER_KINDS = (*OVERTAKABLE_KINDS, SLACK_TICKET_POST, SLACK_PAGE)

# The order in which one pass of the worker tries its lanes' next rows.
PAGE_FIRST, NEW_TICKET, OTHER = 0, 1, 2


class TokenBucket:
    """A lane's budget: `burst` tokens, one more every `interval` seconds; never more than `burst`.

    `interval` 0 means no pacing (SMTP, tests). A Retry-After's pause is kept by the worker,
    on the bot's clock like the rows' due times; the bucket only learns it was overspent.
    """

    def __init__(self, interval: float, burst: int, now: float) -> None:
        self.interval = interval
        self.burst = max(1, burst)
        self.tokens = float(self.burst)
        self.stamp = now
        self.single = False  # the next try is one alone (after a 429), not the start of a burst

    def _refill(self, now: float) -> None:
        if now <= self.stamp:
            return  # a clock that stood still
        if self.interval > 0:
            self.tokens = min(float(self.burst), self.tokens + (now - self.stamp) / self.interval)
        self.stamp = now

    def wait(self, now: float) -> float:
        """Seconds until a try may start (0: now)."""
        if self.interval <= 0:
            return 0.0
        self._refill(now)
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) * self.interval

    def take(self, now: float) -> None:
        """Spend a token on a try (counted before the try, like the try itself)."""
        if self.interval <= 0:
            return
        self._refill(now)
        if self.single:
            self.tokens = min(self.tokens, 1.0)
            self.single = False
        self.tokens = max(-float(self.burst), self.tokens - 1)

    def overspent(self, now: float) -> None:
        """Slack answered 429: the budget we counted is not Slack's. Start again from empty,
        and let the first try after the pause be one alone, then the sustained rate; a
        Retry-After means the budget is spent, not that a burst may follow."""
        self._refill(now)
        self.tokens = min(self.tokens, 0.0)
        self.single = True


class LaneQueue(NamedTuple):
    """What one lane holds, as far as the choice of its next row needs: ids of pending rows."""

    head: int  # the oldest row
    first_page: int | None  # the oldest page DM
    first_post: int | None  # the oldest new ticket's post
    first_barrier: int | None  # the oldest row no ticket post may overtake
    oldest_thread: datetime | None  # when the oldest waiting thread post was queued


class Pick(NamedTuple):
    urgency: int  # PAGE_FIRST, NEW_TICKET or OTHER
    item_id: int


def next_in_lane(queue: LaneQueue, *, now: datetime, max_thread_wait: timedelta = MAX_THREAD_WAIT) -> Pick:
    """The row the lane delivers next; the lane waits if that row is not due yet.

    - A page goes first: it is a DM to the person on call, and nothing queued to them
      (reminders, rota notes) is more pressing than customers waiting.
    - Otherwise rows go in the order written, except that the oldest new ticket's post
      goes before thread posts queued ahead of it, unless one of those has already waited
      `max_thread_wait`. Ticket posts never overtake each other (tickets stay in arrival
      order), nor anything in BARRIER_KINDS.
    """
    if queue.first_page is not None:
        return Pick(PAGE_FIRST, queue.first_page)
    post = queue.first_post
    if post is None:
        return Pick(OTHER, queue.head)
    if post == queue.head:
        return Pick(NEW_TICKET, post)
    if queue.first_barrier is not None and queue.first_barrier < post:
        return Pick(OTHER, queue.head)
    if queue.oldest_thread is not None and now - queue.oldest_thread >= max_thread_wait:
        return Pick(OTHER, queue.head)
    return Pick(NEW_TICKET, post)
