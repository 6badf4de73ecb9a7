"""PAGE_POLICY: who is paged how, and when, written on one line.

    oncall: slack, call+2m, call+5m; backup: slack, call+2m; managers: slack, sms

Levels are `oncall`, `backup` and `managers`, each at most once and in that order.
Each names its channels (`slack`, `call`, `sms`) with an offset from the level's start
(`+90s`, `+2m`, `+1h`; none means at once). A level whose channels all fired and were not
acknowledged hands over to the next after the level's `wait` (PAGE_REPEAT_MINUTES).
`str(policy)` writes it back in this form, so what the bot logs at start-up can be pasted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

LEVEL_NAMES = ("oncall", "backup", "managers")
CHANNELS = ("slack", "call", "sms")
# Longer than any sensible escalation; a typo such as "+200h" is refused, not obeyed.
MAX_OFFSET = timedelta(hours=24)

_ACTION = re.compile(r"^(slack|call|sms)(?:\s*\+\s*(\d{1,6})\s*(s|m|h))?$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600}


class PolicyError(ValueError):
    """PAGE_POLICY cannot be read; the message says where and what is expected."""


@dataclass(frozen=True, order=True)
class Action:
    offset: timedelta
    channel: str

    def __str__(self) -> str:
        return self.channel + _offset_text(self.offset)


@dataclass(frozen=True)
class LevelPlan:
    level: str
    actions: tuple[Action, ...]  # sorted by offset, then channel

    def moments(self) -> list[tuple[timedelta, tuple[str, ...]]]:
        """The level's actions grouped by offset: each group is one step of the chain."""
        grouped: dict[timedelta, list[str]] = {}
        for action in self.actions:
            grouped.setdefault(action.offset, []).append(action.channel)
        return [(offset, tuple(channels)) for offset, channels in sorted(grouped.items())]

    def __str__(self) -> str:
        return f"{self.level}: " + ", ".join(str(a) for a in self.actions)


@dataclass(frozen=True)
class PagePlan:
    levels: tuple[LevelPlan, ...]

    def level(self, name: str) -> LevelPlan | None:
        return next((plan for plan in self.levels if plan.level == name), None)

    @property
    def uses_phone(self) -> bool:
        return any(a.channel != "slack" for plan in self.levels for a in plan.actions)

    def __str__(self) -> str:
        return "; ".join(str(plan) for plan in self.levels)


def repeating_plan(repeats: int, every: timedelta) -> PagePlan:
    """The policy without PAGE_POLICY: a Slack DM per level, repeated `repeats` times."""
    actions = tuple(Action(every * i, "slack") for i in range(repeats + 1))
    return PagePlan(tuple(LevelPlan(level, actions) for level in LEVEL_NAMES))


def parse_policy(text: str) -> PagePlan:
    levels: list[LevelPlan] = []
    for part in (p.strip() for p in text.split(";")):
        if not part:
            continue
        name, colon, rest = part.partition(":")
        name = name.strip().lower()
        if not colon or name not in LEVEL_NAMES:
            raise PolicyError(f"each level starts with oncall:, backup: or managers:, got {part[:40]!r}")
        if any(plan.level == name for plan in levels):
            raise PolicyError(f"level {name} is given twice")
        if levels and LEVEL_NAMES.index(name) < LEVEL_NAMES.index(levels[-1].level):
            raise PolicyError("levels go in the order oncall, backup, managers")
        actions: set[Action] = set()
        for word in (w.strip().lower() for w in rest.split(",")):
            match = _ACTION.match(word)
            if match is None:
                raise PolicyError(f"{name}: {word[:30]!r} is not slack, call or sms with an offset like +2m")
            channel, amount, unit = match.groups()
            offset = timedelta(seconds=int(amount) * _UNIT_SECONDS[unit]) if amount else timedelta(0)
            if offset > MAX_OFFSET:
                raise PolicyError(f"{name}: {word!r} is more than 24 hours after the level starts")
            action = Action(offset, channel)
            if action in actions:
                raise PolicyError(f"{name}: {word!r} is given twice")
            actions.add(action)
        levels.append(LevelPlan(name, tuple(sorted(actions))))
    if not levels:
        raise PolicyError("it names no level; e.g. 'oncall: slack, call+2m; managers: slack'")
    return PagePlan(tuple(levels))


def _offset_text(offset: timedelta) -> str:
    seconds = int(offset.total_seconds())
    if not seconds:
        return ""
    if seconds % 3600 == 0:
        return f"+{seconds // 3600}h"
    if seconds % 60 == 0:
        return f"+{seconds // 60}m"
    return f"+{seconds}s"
