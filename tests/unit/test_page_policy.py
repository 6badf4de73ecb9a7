"""PAGE_POLICY, the one-line escalation policy: read, written back, refused with a reason."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rota.page_policy import (
    CHANNELS,
    LEVEL_NAMES,
    MAX_OFFSET,
    Action,
    LevelPlan,
    PagePlan,
    PolicyError,
    parse_policy,
    repeating_plan,
)

actions = st.builds(
    Action,
    offset=st.integers(0, int(MAX_OFFSET.total_seconds())).map(lambda s: timedelta(seconds=s)),
    channel=st.sampled_from(CHANNELS),
)


@st.composite
def plans(draw: st.DrawFn) -> PagePlan:
    names = draw(st.lists(st.sampled_from(LEVEL_NAMES), min_size=1, unique=True))
    ordered = [n for n in LEVEL_NAMES if n in names]
    return PagePlan(
        tuple(
            LevelPlan(name, tuple(sorted(draw(st.sets(actions, min_size=1, max_size=6))))) for name in ordered
        )
    )


def test_the_documented_example_reads_as_it_says() -> None:
    plan = parse_policy("oncall: slack, call+2m, call+5m; backup: slack, call+2m; managers: slack, sms")
    oncall = plan.level("oncall")
    assert oncall is not None
    assert oncall.moments() == [
        (timedelta(0), ("slack",)),
        (timedelta(minutes=2), ("call",)),
        (timedelta(minutes=5), ("call",)),
    ]
    managers = plan.level("managers")
    assert managers is not None and managers.moments() == [(timedelta(0), ("slack", "sms"))]
    assert plan.uses_phone


@given(plans())
def test_what_is_written_back_reads_the_same(plan: PagePlan) -> None:
    assert parse_policy(str(plan)) == plan


@given(plans(), st.sampled_from([" ", "  ", "\t"]))
def test_spacing_and_case_do_not_matter(plan: PagePlan, space: str) -> None:
    loose = str(plan).replace(", ", f"{space},{space}").replace(": ", f"{space}:{space}").upper()
    assert parse_policy(loose) == plan


@given(st.text(max_size=80))
def test_anything_else_is_refused_with_a_reason_or_read(text: str) -> None:
    try:
        plan = parse_policy(text)
    except PolicyError as exc:
        assert str(exc)
    else:
        assert parse_policy(str(plan)) == plan


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "names no level"),
        ("oncall slack", "starts with"),
        ("night: slack", "starts with"),
        ("oncall: slack; oncall: call", "twice"),
        ("managers: slack; oncall: call", "order"),
        ("oncall: fax", "not slack, call or sms"),
        ("oncall: call+25h", "24 hours"),
        ("oncall: call+2m, call + 2m", "twice"),
        ("oncall:", "not slack, call or sms"),
    ],
)
def test_mistakes_are_named(text: str, says: str) -> None:
    with pytest.raises(PolicyError, match=says):
        parse_policy(text)


def test_without_a_policy_each_level_is_a_dm_repeated() -> None:
    plan = repeating_plan(2, timedelta(minutes=5))
    assert str(plan) == (
        "oncall: slack, slack+5m, slack+10m; backup: slack, slack+5m, slack+10m; "
        "managers: slack, slack+5m, slack+10m"
    )
    assert not plan.uses_phone
