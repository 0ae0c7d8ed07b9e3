"""The duration report: key tables in the terminal, and one self-contained HTML file with charts.

Charts are drawn with matplotlib (Agg backend, no display needed) and embedded as base64
PNG, so the HTML file can be mailed or attached to a ticket as it is.
"""

from __future__ import annotations

import base64
import html
import io
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd

from pipeline.analytics import read_sql, read_view

STUCK_AFTER_SECONDS = 6 * 3600
TOP_OUTLIERS = 10


def human_seconds(value: float | None) -> str:
    """12.3s, 4.5m, 2.1h, 3.4d: durations span seconds to weeks."""
    if value is None or pd.isna(value):
        return "-"
    value = float(value)
    for limit, divisor, unit in ((120, 1, "s"), (7200, 60, "m"), (172800, 3600, "h")):
        if abs(value) < limit:
            return f"{value / divisor:.1f}{unit}"
    return f"{value / 86400:.1f}d"


def _rate(value: float | None) -> str:
    return "-" if value is None or pd.isna(value) else f"{value:.0%}"


def _format(frame: pd.DataFrame, seconds: tuple[str, ...] = (), rates: tuple[str, ...] = ()) -> pd.DataFrame:
    shown = frame.copy()
    for column in seconds:
        shown[column] = shown[column].map(human_seconds)
    for column in rates:
        shown[column] = shown[column].map(_rate)
    return shown


def report_tables(db_path: Path) -> dict[str, pd.DataFrame]:
    """The report's tables, already formatted for people; the same for terminal and HTML."""
    stats = read_view("workflow_duration_stats", db_path).sort_values("jobs", ascending=False)
    today = datetime.now(timezone.utc).date()
    daily = read_sql(
        "select * from telestream_up.daily_workflow_stats "
        f"where completion_date >= date '{today - timedelta(days=1)}' order by completion_date desc, completed_jobs desc",
        db_path,
    )
    stuck = read_sql(
        "select workflow_name, job_name, state, progress, age_seconds, seconds_since_update "
        f"from telestream_up.running_jobs where age_seconds > {STUCK_AFTER_SECONDS} order by age_seconds desc limit 15",
        db_path,
    )
    outliers = read_sql(
        "select workflow_name, job_name, state, elapsed_seconds, workflow_p50_seconds, ratio_to_p50 "
        f"from telestream_up.duration_outliers order by ratio_to_p50 desc limit {TOP_OUTLIERS}",
        db_path,
    )
    quality = read_sql(
        "select problem, count(*) as jobs from telestream_up.data_quality_issues group by problem order by jobs desc",
        db_path,
    )
    regressions = read_sql(
        "select workflow_name, completion_date, median_seconds, baseline_median_seconds, ratio_to_baseline "
        "from telestream_up.workflow_duration_regressions where is_regression "
        "order by completion_date desc limit 10",
        db_path,
    )
    errors = read_sql("select count(*) as open_fetch_errors from telestream_up.open_fetch_errors", db_path)
    outliers["ratio_to_p50"] = outliers["ratio_to_p50"].map(lambda ratio: f"{ratio:.1f}x")
    regressions["ratio_to_baseline"] = regressions["ratio_to_baseline"].map(lambda ratio: f"{ratio:.1f}x")
    return {
        "Workflow durations (terminal jobs)": _format(
            stats[["workflow_name", "jobs", "terminal_jobs", "success_rate", "p50_seconds", "p90_seconds", "p95_seconds", "max_seconds"]],
            seconds=("p50_seconds", "p90_seconds", "p95_seconds", "max_seconds"),
            rates=("success_rate",),
        ),
        "Completed today and yesterday (UTC)": _format(
            daily[["completion_date", "workflow_name", "completed_jobs", "success_rate", "p50_seconds", "p90_seconds"]],
            seconds=("p50_seconds", "p90_seconds"),
            rates=("success_rate",),
        ),
        f"Running for more than {human_seconds(STUCK_AFTER_SECONDS)}": _format(
            stuck, seconds=("age_seconds", "seconds_since_update")
        ),
        "Slowest jobs against their workflow's p95": _format(
            outliers, seconds=("elapsed_seconds", "workflow_p50_seconds")
        ),
        "Duration regressions (day median > 1.5x the previous 28 days)": _format(
            regressions, seconds=("median_seconds", "baseline_median_seconds")
        ),
        "Data quality": quality,
        "Fetch errors": errors,
    }


def format_report(db_path: Path) -> str:
    parts = []
    for title, table in report_tables(db_path).items():
        body = "(none)" if table.empty else table.to_string(index=False)
        parts.append(f"{title}\n{'-' * len(title)}\n{body}")
    return "\n\n".join(parts)


# ---- charts -------------------------------------------------------------------------------


def _png(figure: object) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")  # type: ignore[attr-defined]
    plt.close(figure)  # type: ignore[arg-type]
    return base64.b64encode(buffer.getvalue()).decode()


def chart_duration_distribution(jobs: pd.DataFrame) -> object:
    """Box plot per workflow; log scale when durations span more than two orders of magnitude."""
    import matplotlib.pyplot as plt

    terminal = jobs[jobs.is_terminal & jobs.elapsed_seconds.notna() & (jobs.elapsed_seconds > 0)]
    order = terminal.groupby("workflow_name").elapsed_seconds.median().sort_values().index
    figure, axes = plt.subplots(figsize=(9, 0.55 * max(len(order), 2) + 1.2))
    axes.boxplot([terminal[terminal.workflow_name == name].elapsed_seconds for name in order], vert=False, showfliers=True)
    axes.set_yticks(range(1, len(order) + 1), list(order))
    values = terminal.elapsed_seconds
    if len(values) and values.max() / max(values.min(), 1e-9) > 100:
        axes.set_xscale("log")
        ticks = [t for t in (1, 10, 60, 600, 3600, 6 * 3600, 86400, 7 * 86400, 30 * 86400) if values.min() / 2 <= t <= values.max() * 2]
        axes.set_xticks(ticks, [human_seconds(t) for t in ticks])
    axes.set_xlabel("elapsed time (terminal jobs)")
    axes.set_title("Duration distribution per workflow")
    axes.grid(axis="x", alpha=0.3)
    return figure


def chart_daily_trend(daily: pd.DataFrame) -> object:
    """Daily p50 (solid) and p90 (dashed) per workflow, log scale."""
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(9, 4.5))
    for index, (name, group) in enumerate(daily.sort_values("completion_date").groupby("workflow_name")):
        color = f"C{index % 10}"
        axes.plot(group.completion_date, group.p50_seconds, color=color, label=f"{name} p50", marker=".")
        axes.plot(group.completion_date, group.p90_seconds, color=color, linestyle="--", alpha=0.6)
    axes.set_yscale("log")
    ticks = [60, 600, 3600, 6 * 3600, 86400, 7 * 86400]
    axes.set_yticks(ticks, [human_seconds(t) for t in ticks])
    axes.set_title("Daily duration trend: p50 (solid), p90 (dashed)")
    axes.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=3, frameon=False)
    axes.grid(alpha=0.3)
    figure.autofmt_xdate()
    return figure


def chart_throughput(daily: pd.DataFrame) -> object:
    """Completed jobs per day (stacked by workflow) and the overall success rate."""
    import matplotlib.pyplot as plt

    pivot = daily.pivot_table(index="completion_date", columns="workflow_name", values="completed_jobs", aggfunc="sum").fillna(0)
    totals = daily.groupby("completion_date")[["succeeded_jobs", "failed_jobs"]].sum()
    rate = totals.succeeded_jobs / (totals.succeeded_jobs + totals.failed_jobs).replace(0, float("nan"))
    figure, axes = plt.subplots(figsize=(9, 4.5))
    bottom = None
    for index, name in enumerate(pivot.columns):
        axes.bar(pivot.index, pivot[name], bottom=bottom, label=name, color=f"C{index % 10}")
        bottom = pivot[name] if bottom is None else bottom + pivot[name]
    axes.set_ylabel("completed jobs")
    axes.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=3, frameon=False)
    rate_axes = axes.twinx()
    rate_axes.plot(rate.index, rate.values, color="black", marker="o", label="success rate")
    rate_axes.set_ylim(0, 1.05)
    rate_axes.set_ylabel("success rate (succeeded / (succeeded + failed))")
    axes.set_title("Daily throughput and success rate")
    figure.autofmt_xdate()
    return figure


def _time_breakdown_section(db_path: Path) -> list[str]:
    """The "where the time goes" chart (pipeline/charts_breakdown.py), when the history has content."""
    from pipeline.charts_breakdown import chart_time_breakdown

    try:
        figure = chart_time_breakdown(read_view("workflow_time_breakdown", db_path))
    except Exception:  # noqa: BLE001 - a database from before the view existed: no section
        return []
    if figure is None:
        return []
    return [f"<h2>Where the time goes</h2><img alt='Where the time goes' src='data:image/png;base64,{_png(figure)}'>"]


def write_html_report(db_path: Path, html_path: Path) -> Path:
    """One self-contained HTML file: charts (embedded PNG) and the report's tables."""
    import matplotlib

    matplotlib.use("Agg")
    jobs = read_view("job_durations", db_path)
    daily = read_view("daily_workflow_stats", db_path)
    sections = [f"<p>Database: {html.escape(str(db_path))} — generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC</p>"]
    if jobs.empty:
        sections.append("<p>No jobs loaded yet.</p>")
    else:
        for title, chart in (
            ("Duration distribution", chart_duration_distribution(jobs)),
            ("Daily p50/p90 trend", chart_daily_trend(daily)),
            ("Throughput and success rate", chart_throughput(daily)),
        ):
            sections.append(f"<h2>{title}</h2><img alt='{title}' src='data:image/png;base64,{_png(chart)}'>")
    sections.extend(_time_breakdown_section(db_path))
    for title, table in report_tables(db_path).items():
        body = "<p>(none)</p>" if table.empty else table.to_html(index=False, border=0, classes="table")
        sections.append(f"<h2>{html.escape(title)}</h2>{body}")
    style = (
        "body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;color:#222}"
        "table{border-collapse:collapse;font-size:13px}td,th{padding:3px 8px;border-bottom:1px solid #ddd;text-align:right}"
        "img{max-width:100%}"
    )
    html_path = Path(html_path)
    html_path.write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>UP job durations</title><style>{style}</style></head>"
        f"<body><h1>UP workflow job durations</h1>{''.join(sections)}</body></html>",
        encoding="utf-8",
    )
    return html_path
