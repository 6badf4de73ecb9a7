"""Work after a listener's ack() waits while other requests still wait for their answers
(bot/answer_first.py), through Bolt's own dispatch with the bot's App class."""

from __future__ import annotations

import gc
import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlencode

import pytest
from prometheus_client import generate_latest
from slack_bolt.request import BoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk import WebClient

from bot.answer_first import PendingAnswers
from bot.cli import settle_start_up_objects
from bot.metrics import MeasuredApp, Metrics, ack_timer
from bot.sandbox.slack_api import SlackStandIn
from tests.support.harness import CHANNEL


class Flow:
    """A bot App with two buttons: `slow` answers only when the test lets it, `fast`
    answers at once and then records when its own work ran."""

    def __init__(self, app: MeasuredApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        self.release_slow = threading.Event()
        self.fast_work_done = threading.Event()
        self.slow_was_waiting: list[int] = []

        @app.action("slow")
        def slow(ack: Any) -> None:
            self.release_slow.wait(30)
            ack()

        @app.action("fast")
        def fast(ack: Any) -> None:
            ack()
            self.slow_was_waiting.append(app.pending.waiting)
            self.fast_work_done.set()

    def click(self, action_id: str) -> BoltResponse:
        payload = {
            "type": "block_actions",
            "team": {"id": "T1"},
            "user": {"id": "U1"},
            "api_app_id": "A1",
            "channel": {"id": CHANNEL},
            "container": {"type": "message", "message_ts": "1.1", "channel_id": CHANNEL},
            "trigger_id": "1.2.3",
            "actions": [{"type": "button", "action_id": action_id, "block_id": "b", "action_ts": "1.3"}],
        }
        body = urlencode({"payload": json.dumps(payload)})
        return self.app.dispatch(
            BoltRequest(body=body, headers={"content-type": ["application/x-www-form-urlencoded"]})
        )


@pytest.fixture
def flow_of(tmp_path: Any) -> Iterator[Any]:
    with SlackStandIn(channels=(CHANNEL,)) as slack:

        def make(max_defer: float, settle: float = 0.03) -> Flow:
            metrics = Metrics()
            app = MeasuredApp(
                client=WebClient(token="xoxb-test", base_url=slack.base_url),
                signing_secret="unused",
                request_verification_enabled=False,
                token_verification_enabled=False,
                pending=PendingAnswers(max_defer=max_defer, settle=settle),
                listener_executor=ThreadPoolExecutor(16),
            )
            app.use(ack_timer(metrics, app))
            return Flow(app, metrics)

        yield make


def test_work_after_an_answer_waits_for_the_answers_others_wait_for(flow_of: Any) -> None:
    flow = flow_of(max_defer=30)
    with ThreadPoolExecutor(2) as requests:
        slow = requests.submit(flow.click, "slow")
        while flow.app.pending.waiting < 1:
            time.sleep(0.001)
        fast = requests.submit(flow.click, "fast")
        assert fast.result(10).status == 200, "the second request is answered while the first waits"
        assert not flow.fast_work_done.wait(0.3), "its work waits for the first request's answer"
        flow.release_slow.set()
        assert slow.result(10).status == 200
        assert flow.fast_work_done.wait(10)
    assert flow.slow_was_waiting == [0]
    assert flow.app.pending.waiting == 0


def test_with_nobody_waiting_the_work_goes_on_at_once(flow_of: Any) -> None:
    # A wait of 30 s would show as the event not being set in 10 s.
    flow = flow_of(max_defer=30)
    assert flow.click("fast").status == 200
    assert flow.fast_work_done.wait(10)
    assert flow.app.pending.waiting == 0


def test_the_work_waits_for_a_burst_to_stop_arriving(flow_of: Any) -> None:
    # Requests of one burst reach the bot one after another: a moment with none waiting
    # between two of them is not yet quiet.
    flow = flow_of(max_defer=30, settle=0.6)
    started = time.monotonic()
    assert flow.click("fast").status == 200
    assert not flow.fast_work_done.wait(0.2), "held until nothing has arrived for a while"
    assert flow.fast_work_done.wait(10)
    assert time.monotonic() - started >= 0.6


def test_the_work_waits_no_longer_than_the_bound(flow_of: Any) -> None:
    flow = flow_of(max_defer=0.2)
    with ThreadPoolExecutor(2) as requests:
        slow = requests.submit(flow.click, "slow")
        while flow.app.pending.waiting < 1:
            time.sleep(0.001)
        assert requests.submit(flow.click, "fast").result(10).status == 200
        assert flow.fast_work_done.wait(10), "a request that never answers holds nothing back for long"
        assert flow.slow_was_waiting == [1]
        flow.release_slow.set()
        assert slow.result(10).status == 200


def test_acknowledgements_are_still_timed(flow_of: Any) -> None:
    flow = flow_of(max_defer=30)
    flow.app.listener_ids.add("fast")
    assert flow.click("fast").status == 200
    assert flow.fast_work_done.wait(10)
    exposed = generate_latest(flow.metrics.registry).decode()
    assert 'supportbot_listener_ack_seconds_count{listener="fast"} 1.0' in exposed


def test_an_event_bolt_acknowledges_itself_ends_its_wait(flow_of: Any) -> None:
    flow = flow_of(max_defer=30)
    seen = threading.Event()

    @flow.app.event("app_home_opened")
    def home(event: dict[str, Any]) -> None:
        seen.set()

    body = json.dumps(
        {
            "type": "event_callback",
            "team_id": "T1",
            "api_app_id": "A1",
            "event": {"type": "app_home_opened", "user": "U1", "tab": "home"},
            "event_id": "Ev1",
            "event_time": 1,
        }
    )
    with ThreadPoolExecutor(2) as requests:
        slow = requests.submit(flow.click, "slow")
        while flow.app.pending.waiting < 1:
            time.sleep(0.001)
        event = BoltRequest(body=body, headers={"content-type": ["application/json"]})
        # Answered while another request waits: Bolt's own ack runs in the answering thread,
        # which must not be held (a 30 s hold would miss this 10 s wait).
        assert requests.submit(flow.app.dispatch, event).result(10).status == 200
        assert seen.wait(10)
        flow.release_slow.set()
        assert slow.result(10).status == 200
    assert flow.app.pending.waiting == 0


def test_what_start_up_built_is_left_out_of_full_collections() -> None:
    gc.unfreeze()
    try:
        settle_start_up_objects()
        # Every module and class made so far is frozen: a full pass no longer walks them.
        assert gc.get_freeze_count() > 10_000
    finally:
        gc.unfreeze()
