"""The charts of the HTML report and the notebook, drawn the same way in both.

Each chart has a pure function that computes exactly the numbers it draws (tested against the
views' data) and a ``draw_*`` function that turns them into a matplotlib Figure. Durations span
seconds to weeks, so they are drawn on log axes fitted to the data, with ticks in human units.
"""

from __future__ import annotations

import math
from datetime import date
from typing import TYPE_CHECKING, Sequence

import numpy as np
import pandas as pd

if TYPE_CHECKING:  # matplotlib is imported only when drawing
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

LOW_COUNT = 5  # a day with fewer completed jobs has no meaningful p90 and a noisy p50
BOX_PERCENTILES = (5, 25, 50, 75, 95)  # whiskers p5-p95, box p25-p75, line p50
# Candidate tick positions (seconds): round values people read at a glance.
NICE_SECONDS = (
    0.001, 0.01, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600, 900, 1200, 1800, 2700, 3600, 5400, 7200,
    3 * 3600, 4 * 3600, 6 * 3600, 8 * 3600, 12 * 3600, 86400, 2 * 86400, 3 * 86400, 5 * 86400,
    7 * 86400, 14 * 86400, 30 * 86400, 60 * 86400, 90 * 86400, 180 * 86400, 365 * 86400,
)
COARSE_SECONDS = (0.001, 0.01, 0.1, 1, 10, 60, 600, 3600, 6 * 3600, 86400, 7 * 86400, 30 * 86400, 365 * 86400)
MEDIUM_SECONDS = (
    0.001, 0.01, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600, 2 * 3600, 3 * 3600, 6 * 3600, 12 * 3600,
    86400, 2 * 86400, 3 * 86400, 7 * 86400, 14 * 86400, 30 * 86400, 90 * 86400, 365 * 86400,
)
TICK_LEVELS = (COARSE_SECONDS, MEDIUM_SECONDS, NICE_SECONDS)


# ---- numbers ------------------------------------------------------------------------------


def duration_label(seconds: float) -> str:
    """A tick label: 45 s, 1.5 min, 2 h, 3 d (no decimals beyond what the value needs)."""
    if seconds < 1:
        return f"{round(seconds * 1000, 1):g} ms"
    for limit, divisor, unit in ((60, 1, "s"), (3600, 60, "min"), (86400, 3600, "h")):
        if seconds < limit:
            return f"{round(seconds / divisor, 1):g} {unit}"
    return f"{round(seconds / 86400, 1):g} d"


def duration_ticks(low: float, high: float, max_ticks: int = 7) -> list[float]:
    """Round tick positions covering [low, high] on a log axis: at least two, at most ``max_ticks``.

    The coarsest set of round values that puts three ticks in the range wins (10 s, 1 min,
    10 min, 1 h … before 15 s, 20 s, 45 s …), then ticks closer than 1.4x are dropped, so labels
    never crowd.
    """
    low, high = max(min(low, high), 1e-3), max(low, high, 1e-3)
    inside: list[float] = []
    for candidates in TICK_LEVELS:  # rounder values first; finer ones only where they do not crowd them
        for tick in candidates:
            if low <= tick <= high and all(max(tick / kept, kept / tick) >= 1.4 for kept in inside):
                inside.append(tick)
        if len(inside) >= 3:
            break
    inside.sort()
    if len(inside) < 2:  # a narrow range: the round values just around it
        below = [tick for tick in NICE_SECONDS if tick < low][-1:] or [low]
        above = [tick for tick in NICE_SECONDS if tick > high][:1] or [high]
        inside = sorted(set(below + inside + above))
    if len(inside) > max_ticks:  # every second (third …) value: the round values are about evenly spaced in log
        inside = inside[:: math.ceil(len(inside) / max_ticks)]
    spaced = [inside[0]]
    for tick in inside[1:]:
        if tick / spaced[-1] >= 1.4:
            spaced.append(tick)
    return [float(tick) for tick in spaced]


def _terminal_durations(jobs: pd.DataFrame) -> pd.DataFrame:
    """Terminal jobs with a known, positive elapsed time (a log axis cannot show 0 s)."""
    return jobs[jobs.is_terminal & jobs.elapsed_seconds.notna() & (jobs.elapsed_seconds > 0)]


def box_stats(jobs: pd.DataFrame) -> pd.DataFrame:
    """Per workflow (fastest first): job count, p5/p25/p50/p75/p95, min, max of elapsed seconds.

    Explicit percentiles, not Tukey's 1.5 IQR whiskers: those computed on raw seconds and drawn
    on a log axis reach the minimum on the fast side and show outliers only on the slow side.
    Percentiles are the same on either scale.
    """
    terminal = _terminal_durations(jobs)
    grouped = terminal.groupby("workflow_name").elapsed_seconds
    stats = pd.DataFrame({"jobs": grouped.size()})
    for percentile in BOX_PERCENTILES:
        stats[f"p{percentile}"] = grouped.quantile(percentile / 100)
    stats["min"], stats["max"] = grouped.min(), grouped.max()
    return stats.sort_values("p50")


def trend_frame(daily: pd.DataFrame, today: date | None = None) -> pd.DataFrame:
    """Daily p50/p90 per workflow on one shared calendar: the numbers of the trend chart.

    Every workflow gets every date from the first to the last completion day, so lines break
    (NaN) on days without completions instead of bridging them. p90 is kept only on days with at
    least ``LOW_COUNT`` jobs; ``is_low_count`` marks the days whose p50 is drawn hollow;
    ``is_partial`` marks ``today`` (UTC), whose completions lean to short jobs (long ones started
    today have not finished yet).
    """
    columns = ["completion_date", "workflow_name", "completed_jobs", "p50_seconds", "p90_seconds", "is_low_count",
               "is_partial"]
    if daily.empty:
        return pd.DataFrame(columns=columns)
    dates = pd.to_datetime(daily.completion_date)
    calendar = pd.date_range(dates.min(), dates.max(), freq="D")
    frames = []
    for name, group in daily.assign(completion_date=dates).groupby("workflow_name"):
        day = group.groupby("completion_date").agg(
            completed_jobs=("completed_jobs", "sum"), p50_seconds=("p50_seconds", "first"), p90_seconds=("p90_seconds", "first")
        )
        day = day.reindex(calendar)
        day["completed_jobs"] = day.completed_jobs.fillna(0).astype(int)
        day.loc[day.completed_jobs < LOW_COUNT, "p90_seconds"] = np.nan
        day["is_low_count"] = (day.completed_jobs > 0) & (day.completed_jobs < LOW_COUNT)
        day["is_partial"] = pd.DatetimeIndex(day.index).date == today
        frames.append(day.rename_axis("completion_date").reset_index().assign(workflow_name=name))
    return pd.concat(frames, ignore_index=True)[columns]


def throughput_frame(daily: pd.DataFrame, today: date) -> pd.DataFrame:
    """Per calendar day: completed jobs per workflow, total, succeeded/failed, success rate, partial day.

    ``is_partial`` marks today (UTC): its bar is not a full day and must not read as a drop.
    ``success_rate`` is NaN on days without succeeded or failed jobs (a gap, not 0 %).
    """
    if daily.empty:
        return pd.DataFrame(columns=["total", "succeeded", "failed", "decided", "success_rate", "is_partial"])
    dates = pd.to_datetime(daily.completion_date)
    calendar = pd.date_range(dates.min(), max(dates.max(), pd.Timestamp(today)), freq="D")
    frame = daily.assign(completion_date=dates)
    counts = frame.pivot_table(index="completion_date", columns="workflow_name", values="completed_jobs", aggfunc="sum")
    counts = counts.reindex(calendar).fillna(0).astype(int)
    counts.columns = [f"jobs: {name}" for name in counts.columns]
    totals = frame.groupby("completion_date")[["succeeded_jobs", "failed_jobs"]].sum().reindex(calendar).fillna(0)
    result = counts.assign(
        total=counts.sum(axis=1),
        succeeded=totals.succeeded_jobs.astype(int),
        failed=totals.failed_jobs.astype(int),
    )
    result["decided"] = result.succeeded + result.failed
    result["success_rate"] = result.succeeded / result.decided.replace(0, np.nan)
    result["is_partial"] = pd.DatetimeIndex(result.index).date == today
    return result.rename_axis("completion_date")


def throughput_ylimit(totals: pd.Series) -> float:
    """The bar chart's top: the data's max, unless one day would flatten the rest.

    A day above three times the median day (of days with completions) is clipped at that height
    and its real value written on it, so 29 ordinary days keep most of the chart.
    """
    busy = totals[totals > 0]
    if busy.empty:
        return 1.0
    cap = 3 * float(busy.median())
    return float(busy.max()) * 1.15 if busy.max() <= cap else cap * 1.15  # headroom for the labels


def histogram_bins(values: pd.Series, bins: int = 30) -> np.ndarray:
    """Log-spaced bin edges over the data: equal width on the log axis the histogram is drawn on."""
    positive = values[values > 0]
    if positive.empty:
        return np.array([1.0, 10.0])
    low, high = float(positive.min()), float(positive.max())
    if high <= low * 1.01:
        low, high = low / 1.5, high * 1.5
    return np.geomspace(low, high * 1.0001, bins + 1)


# ---- drawing ------------------------------------------------------------------------------


def _duration_axis(axes: Axes, low: float, high: float, which: str = "y") -> None:
    """A log axis fitted to [low, high] (a little padding), ticks and labels in human units."""
    from matplotlib.ticker import NullFormatter, NullLocator

    low, high = max(low, 1e-3), max(high, low * 1.01, 1e-3)
    pad = (high / low) ** 0.06 if high > low else 1.2
    ticks = duration_ticks(low, high)
    bottom, top = min(low / pad, ticks[0]), max(high * pad, ticks[-1])
    axis = axes.yaxis if which == "y" else axes.xaxis
    if which == "y":
        axes.set_yscale("log")
        axes.set_ylim(bottom, top)
    else:
        axes.set_xscale("log")
        axes.set_xlim(bottom, top)
    axis.set_ticks(ticks, [duration_label(tick) for tick in ticks])
    axis.set_minor_locator(NullLocator())
    axis.set_minor_formatter(NullFormatter())


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".")[:2] if part.isdigit())


def _date_axis(axes: Axes) -> None:
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator(minticks=3, maxticks=8)
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


def draw_duration_boxes(stats: pd.DataFrame) -> Figure:
    """One horizontal box per workflow on a shared log axis; job count in the label."""
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(9, 0.5 * max(len(stats), 2) + 1.4))
    boxes = [
        {
            "label": f"{name}  (n={int(row.jobs)})",
            "whislo": row.p5, "q1": row.p25, "med": row.p50, "q3": row.p75, "whishi": row.p95,
            "fliers": [value for value in (row["min"], row["max"]) if value < row.p5 or value > row.p95],
        }
        for name, row in stats.iterrows()
    ]
    import matplotlib

    horizontal = {"orientation": "horizontal"} if _version(matplotlib.__version__) >= (3, 10) else {"vert": False}
    axes.bxp(boxes, **horizontal, showfliers=True, patch_artist=True,
             boxprops={"facecolor": "#cfe0f3"}, medianprops={"color": "#1f4e79", "linewidth": 2},
             flierprops={"marker": "o", "markersize": 4, "markerfacecolor": "none"})
    if len(stats):
        _duration_axis(axes, float(stats["min"].min()), float(stats["max"].max()), which="x")
    axes.set_xlabel("elapsed time of terminal jobs (log scale)")
    axes.set_title("Duration per workflow: box p25–p75, line median, whiskers p5–p95, circles min and max", fontsize=10)
    axes.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    return figure


def _panel_grid(count: int, height: float) -> tuple[Figure, Sequence[Axes]]:
    import matplotlib.pyplot as plt

    columns = 2 if count > 3 else 1
    rows = max(1, math.ceil(count / columns))
    figure, grid = plt.subplots(rows, columns, figsize=(10, height * rows + 1.0), sharex=True, squeeze=False)
    panels = list(grid.flat)
    for extra in panels[count:]:
        extra.set_visible(False)
    return figure, panels[:count]


def draw_daily_trend(trend: pd.DataFrame) -> Figure:
    """Small multiples: one panel per workflow, shared time axis, each y axis fitted to its data."""
    from matplotlib.artist import Artist
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    names = sorted(trend.workflow_name.unique())
    figure, panels = _panel_grid(len(names), 2.0)
    for axes, name in zip(panels, names):
        days = trend[trend.workflow_name == name]
        axes.plot(days.completion_date, days.p50_seconds, color="C0", linewidth=1.5)
        solid = days[~days.is_low_count]
        axes.plot(solid.completion_date, solid.p50_seconds, "o", color="C0", markersize=3.5)
        low = days[days.is_low_count]
        axes.plot(low.completion_date, low.p50_seconds, "o", markerfacecolor="white", markeredgecolor="C0", markersize=4)
        axes.plot(days.completion_date, days.p90_seconds, color="C3", linestyle="--", linewidth=1.2)
        values = pd.concat([days.p50_seconds, days.p90_seconds]).dropna()
        values = values[values > 0]
        if len(values):
            _duration_axis(axes, float(values.min()), float(values.max()))
        for moment in days.completion_date[days.is_partial]:
            axes.axvspan(moment - pd.Timedelta(hours=12), moment + pd.Timedelta(hours=12), color="#999999", alpha=0.2,
                         linewidth=0)
        axes.set_title(f"{name}  ({int(days.completed_jobs.sum())} jobs)", fontsize=9, loc="left")
        axes.grid(alpha=0.3)
        _date_axis(axes)
    for axes in panels[:: 2 if len(panels) > 3 else 1]:
        axes.set_ylabel("duration")
    legend: list[Artist] = [
        Line2D([], [], color="C0", marker="o", markersize=3.5, label="daily median (p50)"),
        Line2D([], [], color="C0", marker="o", markerfacecolor="white", linestyle="none",
               label=f"median of a day with < {LOW_COUNT} jobs (noisy)"),
        Line2D([], [], color="C3", linestyle="--", label=f"daily p90 (days with ≥ {LOW_COUNT} jobs)"),
    ]
    if trend.is_partial.any():
        legend.append(Patch(color="#999999", alpha=0.2, label="today (partial day)"))
    figure.legend(handles=legend, loc="upper center", ncol=len(legend), frameon=False, fontsize=8, bbox_to_anchor=(0.5, 1.0))
    figure.suptitle("Daily duration per workflow (UTC completion day; gaps: no completions)", y=1.04, fontsize=11)
    figure.tight_layout(rect=(0, 0, 1, 0.97))
    return figure


def draw_throughput(throughput: pd.DataFrame) -> Figure:
    """Stacked completed jobs per day (partial day hatched, outlier day clipped) over a success-rate panel."""
    import matplotlib.pyplot as plt

    figure, (bars, rates) = plt.subplots(
        2, 1, figsize=(10, 5.8), sharex=True, gridspec_kw={"height_ratios": [2.2, 1]}
    )
    columns = [column for column in throughput.columns if column.startswith("jobs: ")]
    dates = throughput.index
    bottom = np.zeros(len(throughput))
    for index, column in enumerate(columns):
        color = f"C{index % 10}"
        values = throughput[column].to_numpy(dtype=float)
        full, partial = ~throughput.is_partial.to_numpy(), throughput.is_partial.to_numpy()
        bars.bar(dates[full], values[full], bottom=bottom[full], color=color, label=column[6:], width=0.8)
        bars.bar(dates[partial], values[partial], bottom=bottom[partial], color=color, alpha=0.35, hatch="///",
                 edgecolor="white", width=0.8)
        bottom += values
    top = throughput_ylimit(throughput.total)
    bars.set_ylim(0, top)
    for day, total in throughput.total.items():
        if total > top:
            bars.annotate(f"{int(total)} ▲", (day, top), xytext=(0, -12), textcoords="offset points", ha="center",
                          fontsize=8, color="black", weight="bold")
    for day in dates[throughput.is_partial.to_numpy()]:
        bars.annotate("today (partial)", (day, min(throughput.total[day], top)), xytext=(0, 4), rotation=90,
                      textcoords="offset points", ha="center", va="bottom", fontsize=7, color="#555555")
    bars.set_ylabel("completed jobs per day")
    bars.set_title("Daily throughput (stacked by workflow)", fontsize=10, loc="left")
    bars.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    bars.grid(axis="y", alpha=0.3)

    rate = throughput.success_rate
    enough = throughput.decided >= LOW_COUNT
    rates.plot(dates, rate, color="black", linewidth=1)
    rates.plot(dates[enough], rate[enough], "o", color="black", markersize=3.5, label="success rate")
    rates.plot(dates[~enough], rate[~enough], "o", color="black", markerfacecolor="white", markersize=4,
               label=f"day with < {LOW_COUNT} succeeded+failed jobs")
    rates.set_ylim(-0.03, 1.03)
    rates.yaxis.set_major_formatter(lambda value, _: f"{value:.0%}")
    rates.set_ylabel("succeeded /\n(succeeded + failed)")
    rates.set_title("Daily success rate", fontsize=10, loc="left")
    rates.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    rates.grid(alpha=0.3)
    _date_axis(rates)
    figure.tight_layout()
    return figure


def draw_duration_histograms(jobs: pd.DataFrame, bins: int = 30) -> Figure:
    """One histogram per workflow on a shared log axis with log-spaced bins (equal width as drawn)."""
    terminal = _terminal_durations(jobs)
    names = list(box_stats(jobs).index)
    edges = histogram_bins(terminal.elapsed_seconds, bins)
    figure, panels = _panel_grid(len(names), 1.6)
    for axes, name in zip(panels, names):
        values = terminal[terminal.workflow_name == name].elapsed_seconds
        axes.hist(values, bins=list(edges), color="C0", alpha=0.85)
        axes.axvline(values.median(), color="C3", linewidth=1.2)
        axes.set_title(f"{name}  (n={len(values)}, median {duration_label(values.median())})", fontsize=9, loc="left")
        axes.set_ylabel("jobs")
        axes.grid(axis="x", alpha=0.3)
        _duration_axis(axes, float(edges[0]), float(edges[-1]), which="x")
    figure.suptitle("Elapsed time of terminal jobs (log-spaced bins; red line: median)", fontsize=11)
    figure.tight_layout()
    return figure
