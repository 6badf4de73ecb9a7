"""PNG charts of the stats, drawn with matplotlib's Agg renderer: no display, no pyplot.

pyplot keeps global state (the current figure) and Bolt runs listeners on a thread
pool, so each chart builds its own `Figure` on its own Agg canvas instead.
Every chart is WIDTH × HEIGHT pixels exactly: no tight bounding box, which would crop.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bot.stats.figures import DayVolume, OnCall, TagTrend
from bot.stats.report import StatsReport

WIDTH, HEIGHT, DPI = 1000, 500, 100
_KIND_COLOURS = {"weeknight": "#4c72b0", "weekend": "#dd8452", "holiday": "#c44e52"}


@dataclass(frozen=True)
class Chart:
    filename: str
    title: str
    png: bytes


def _figure() -> Figure:
    figure = Figure(figsize=(WIDTH / DPI, HEIGHT / DPI), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _png(figure: Figure) -> bytes:
    out = io.BytesIO()
    figure.savefig(out, format="png", dpi=DPI)
    return out.getvalue()


def _nothing(figure: Figure, title: str, why: str) -> bytes:
    axes = figure.add_subplot()
    axes.set_title(title)
    axes.set_axis_off()
    axes.text(0.5, 0.5, why, ha="center", va="center", fontsize=14, color="#666666")
    return _png(figure)


def _day_labels(days: Sequence[date]) -> list[str]:
    return [f"{d:%d %b}" for d in days]


def _thin_ticks(axes: Axes, positions: Sequence[float], labels: Sequence[str], most: int = 15) -> None:
    # A quarter's 90 day labels would overlap into a black smear; label every few days.
    step = max(1, math.ceil(len(positions) / most))
    axes.set_xticks(list(positions)[::step], list(labels)[::step], rotation=45, ha="right")


def volume_chart(volume: Sequence[DayVolume], title: str = "Tickets per day") -> bytes:
    """Created and resolved per day as bars, the backlog at each day's end as a line."""
    figure = _figure()
    if not volume:
        return _nothing(figure, title, "No days in this period")
    axes = figure.add_subplot()
    x = list(range(len(volume)))
    axes.bar([i - 0.2 for i in x], [d.created for d in volume], width=0.4, label="created", color="#4c72b0")
    axes.bar([i + 0.2 for i in x], [d.resolved for d in volume], width=0.4, label="resolved", color="#55a868")
    axes.plot(x, [d.backlog for d in volume], color="#c44e52", marker="o", markersize=3, label="backlog")
    axes.set_title(title)
    axes.set_ylabel("tickets")
    axes.set_ylim(bottom=0)
    _thin_ticks(axes, x, _day_labels([d.day for d in volume]))
    axes.legend(loc="upper left")
    axes.grid(axis="y", alpha=0.3)
    return _png(figure)


def response_chart(
    days: Sequence[date],
    first_response: Sequence[float | None],
    resolution: Sequence[float | None],
    title: str = "Median times, in business hours",
) -> bytes:
    """Median first response (tickets created that day) and resolution (resolved that day), in hours."""
    figure = _figure()
    if not any(v is not None for v in [*first_response, *resolution]):
        return _nothing(figure, title, "No replies or resolutions in this period")
    axes = figure.add_subplot()
    x = list(range(len(days)))

    def hours(values: Sequence[float | None]) -> list[float]:
        return [math.nan if v is None else v / 3600 for v in values]

    axes.plot(x, hours(first_response), marker="o", markersize=3, label="first response", color="#4c72b0")
    axes.plot(x, hours(resolution), marker="s", markersize=3, label="resolution", color="#55a868")
    axes.set_title(title)
    axes.set_ylabel("business hours")
    axes.set_ylim(bottom=0)
    _thin_ticks(axes, x, _day_labels(days))
    axes.legend(loc="upper left")
    axes.grid(axis="y", alpha=0.3)
    return _png(figure)


def tags_chart(tags: Sequence[TagTrend], title: str = "Top tags, against the period before") -> bytes:
    figure = _figure()
    if not tags:
        return _nothing(figure, title, "No tagged tickets in this period")
    axes = figure.add_subplot()
    shown = list(reversed(tags))  # the biggest on top
    y = list(range(len(shown)))
    axes.barh(
        [i + 0.2 for i in y], [t.count for t in shown], height=0.4, label="this period", color="#4c72b0"
    )
    axes.barh(
        [i - 0.2 for i in y], [t.previous for t in shown], height=0.4, label="period before", color="#b0b0b0"
    )
    axes.set_yticks(y, [t.name for t in shown])
    axes.set_xlabel("tickets")
    axes.set_title(title)
    axes.legend(loc="lower right")
    axes.grid(axis="x", alpha=0.3)
    return _png(figure)


def oncall_chart(
    people: Mapping[str, OnCall],
    pages: Mapping[str, int],
    names: Mapping[str, str],
    title: str = "On-call load per person",
) -> bytes:
    """After-hours hours held per person, stacked by kind of night, with pages received noted."""
    figure = _figure()
    held = {user: o for user, o in people.items() if o.duties or pages.get(user)}
    if not held:
        return _nothing(figure, title, "Nobody was on call in this period")
    axes = figure.add_subplot()
    order = sorted(held, key=lambda u: (held[u].hours, names.get(u, u)))
    y = list(range(len(order)))
    left = [0.0] * len(order)
    for kind, colour in _KIND_COLOURS.items():
        widths = [held[u].hours_by_kind.get(kind, 0.0) for u in order]
        if any(widths):
            axes.barh(y, widths, left=left, color=colour, label=kind)
            left = [a + b for a, b in zip(left, widths, strict=True)]
    for i, user in enumerate(order):
        count = pages.get(user, 0)
        if count:
            axes.annotate(f" {count} page{'s' if count != 1 else ''}", (left[i], i), va="center", fontsize=9)
    axes.set_yticks(y, [names.get(u, u) for u in order])
    axes.set_xlim(0, max(left) * 1.15 or 1)  # room for the page counts beside the bars
    axes.set_xlabel("hours on call, after hours")
    axes.set_title(title)
    axes.legend(loc="lower right")
    axes.grid(axis="x", alpha=0.3)
    return _png(figure)


def report_charts(report: StatsReport, names: Mapping[str, str]) -> list[Chart]:
    """The four charts that go with a manager's stats, named after the period."""
    stamp = f"{report.period.first_day:%Y%m%d}-{report.period.last_day:%Y%m%d}"
    label = report.period.label()
    pages = {user: p.pages for user, p in report.people.items()}
    on_call = {user: p.on_call for user, p in report.people.items()}
    return [
        Chart(f"volume-{stamp}.png", f"Tickets per day, {label}", volume_chart(report.volume)),
        Chart(
            f"response-times-{stamp}.png",
            f"Median response and resolution times, {label}",
            response_chart(report.period.days, report.daily_first_response, report.daily_resolution),
        ),
        Chart(f"tags-{stamp}.png", f"Top tags, {label}", tags_chart(report.tags)),
        Chart(f"on-call-{stamp}.png", f"On-call load, {label}", oncall_chart(on_call, pages, names)),
    ]
