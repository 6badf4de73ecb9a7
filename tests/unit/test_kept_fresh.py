"""A Slack lookup kept in memory: readers never wait for a refresh, except the very first read,
and never longer than they allow; a failed refresh keeps the last value."""

from __future__ import annotations

import time

from slack_sdk.errors import SlackApiError
from slack_sdk.web import SlackResponse

from handlers.kept_fresh import KeptFresh


class SlowLookup:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.calls = 0
        self.fail = False

    def __call__(self) -> int:
        self.calls += 1
        time.sleep(self.seconds)
        if self.fail:
            response = SlackResponse(
                client=None,
                http_verb="POST",
                api_url="",
                req_args={},
                data={"ok": False},
                headers={},
                status_code=500,
            )
            raise SlackApiError("down", response)
        return self.calls


def test_the_first_read_waits_at_most_as_long_as_it_allows() -> None:
    lookup = SlowLookup(0.5)
    kept = KeptFresh(lookup, every=60, what="a test value")
    started = time.monotonic()
    assert kept.get(first_wait=0.1) is None
    assert time.monotonic() - started < 0.3
    assert kept.get(first_wait=2) == 1  # waits for the fetch under way, starts no second one
    assert lookup.calls == 1


def test_a_stale_value_is_served_at_once_while_it_is_refreshed() -> None:
    lookup = SlowLookup(0.3)
    kept = KeptFresh(lookup, every=0.05, what="a test value")
    assert kept.get(first_wait=2) == 1
    time.sleep(0.1)
    started = time.monotonic()
    assert kept.get(first_wait=2) == 1  # stale: served, a refresh starts
    assert time.monotonic() - started < 0.05
    deadline = time.monotonic() + 2
    while kept.get(first_wait=0) != 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert kept.get(first_wait=0) == 2


def test_a_failed_refresh_keeps_the_last_value() -> None:
    lookup = SlowLookup(0.0)
    kept = KeptFresh(lookup, every=0.01, what="a test value")
    assert kept.get(first_wait=1) == 1
    lookup.fail = True
    time.sleep(0.05)
    for _ in range(5):
        assert kept.get(first_wait=0) == 1
        time.sleep(0.02)
    assert lookup.calls > 1


def test_a_miss_reads_again_and_waits_for_it_once_the_value_is_old_enough() -> None:
    # Someone who joined after the list was read is not refused on the strength of an old list.
    members = {"UADA"}
    fetches: list[float] = []

    def fetch() -> frozenset[str]:
        fetches.append(time.monotonic())
        return frozenset(members)

    kept = KeptFresh(fetch, every=60.0, what="the staff list")
    assert kept.get(first_wait=2.0) == {"UADA"}
    members.add("UBOB")
    # Within `older_than` of the last read, a miss is answered from memory (a flood of misses
    # costs no more than one read)…
    assert kept.recheck(older_than=60.0, wait=1.0) == {"UADA"}
    assert len(fetches) == 1
    # …past it, the miss waits for a fresh read.
    assert kept.recheck(older_than=0.0, wait=2.0) == {"UADA", "UBOB"}
    assert len(fetches) == 2
