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

from pipeline import charts
from pipeline.analytics import read_sql, read_view

STUCK_AFTER_SECONDS = 6 * 3600  # for workflows without a p99 yet
TOP_OUTLIERS = 10
TOP_FETCH_ERRORS = 10


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


def humanize(frame: pd.DataFrame, seconds: tuple[str, ...] = (), rates: tuple[str, ...] = (),
             ratios: tuple[str, ...] = ()) -> pd.DataFrame:
    """A copy for people: durations as 12.3s/4.5m/2.1h/3.4d, rates as %, ratios as 1.5x."""
    shown = frame.copy()
    for column in seconds:
        shown[column] = shown[column].map(human_seconds)
    for column in rates:
        shown[column] = shown[column].map(_rate)
    for column in ratios:
        shown[column] = shown[column].map(lambda ratio: "-" if ratio is None or pd.isna(ratio) else f"{ratio:.1f}x")
    return shown



def _regressions(db_path: Path) -> tuple[str, pd.DataFrame]:
    judged = read_sql(
        "select count(*) as days, count(*) filter (where is_judged) as judged, count(threshold_ratio) as with_threshold "
        "from telestream_up.workflow_duration_regressions",
        db_path,
    ).iloc[0]
    flagged = read_sql(
        "select workflow_name, completion_date, completed_jobs, median_seconds, baseline_median_seconds, "
        "ratio_to_baseline, threshold_ratio from telestream_up.workflow_duration_regressions where is_regression "
        "order by completion_date desc, ratio_to_baseline desc limit 10",
        db_path,
    )
    title = (
        "Duration regressions: day median above its baseline by more than chance explains "
        f"({int(judged.with_threshold)} of {int(judged.days)} workflow-days had enough jobs to compare, "
        f"{int(judged.judged)} enough to catch a 1.5x slowdown)"
    )
    return title, humanize(flagged, seconds=("median_seconds", "baseline_median_seconds"),
                           ratios=("ratio_to_baseline", "threshold_ratio"))


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
        "select running.workflow_name, running.job_name, running.state, running.progress, running.age_seconds, "
        "stats.p99_seconds as workflow_p99_seconds, running.seconds_since_update "
        "from telestream_up.running_jobs as running left join telestream_up.workflow_duration_stats as stats "
        "on stats.workflow_id = running.workflow_id "
        f"where running.state = 'in-process' and running.age_seconds > coalesce(stats.p99_seconds, {STUCK_AFTER_SECONDS}) "
        "order by running.age_seconds / coalesce(stats.p99_seconds, 1) desc limit 15",
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
    errors = read_sql(
        "select workflow_id, job_id, error_kind, http_status, attempts, left(message, 80) as message "
        "from telestream_up.open_fetch_errors order by workflow_id, job_id",
        db_path,
    )
    regressions_title, regressions = _regressions(db_path)
    errors_title = (
        f"Open fetch errors: {len(errors)} job(s) whose latest fetch failed"
        + (f" (first {TOP_FETCH_ERRORS}; all in telestream_up.open_fetch_errors)" if len(errors) > TOP_FETCH_ERRORS else "")
    )
    return {
        "Workflow durations (terminal jobs)": humanize(
            stats[["workflow_name", "jobs", "terminal_jobs", "success_rate", "p50_seconds", "p90_seconds", "p95_seconds", "max_seconds"]],
            seconds=("p50_seconds", "p90_seconds", "p95_seconds", "max_seconds"),
            rates=("success_rate",),
        ),
        "Completed today and yesterday (UTC; today is a partial day)": humanize(
            daily[["completion_date", "workflow_name", "completed_jobs", "success_rate", "p50_seconds", "p90_seconds"]],
            seconds=("p50_seconds", "p90_seconds"),
            rates=("success_rate",),
        ),
        "In process longer than their workflow's p99 (likely stuck)": humanize(
            stuck, seconds=("age_seconds", "workflow_p99_seconds", "seconds_since_update")
        ),
        "Slowest jobs against their workflow's p95": humanize(
            outliers, seconds=("elapsed_seconds", "workflow_p50_seconds"), ratios=("ratio_to_p50",)
        ),
        regressions_title: regressions,
        "Data quality (telestream_up.data_quality_issues)": quality,
        errors_title: errors.head(TOP_FETCH_ERRORS),
    }


def format_report(db_path: Path) -> str:
    parts = []
    for title, table in report_tables(db_path).items():
        body = "(none)" if table.empty else table.to_string(index=False)
        parts.append(f"{title}\n{'-' * len(title)}\n{body}")
    return "\n\n".join(parts)


# ---- charts (drawn by pipeline.charts, shared with the notebook) -------------------------------


def _png(figure: object) -> str:
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    if not isinstance(figure, Figure):
        raise TypeError(f"not a matplotlib Figure: {type(figure).__name__}")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode()


def _time_breakdown_chart(db_path: Path) -> object | None:
    """The "where the time goes" chart (pipeline/charts_breakdown.py), when the job history has content."""
    from pipeline.charts_breakdown import chart_time_breakdown

    try:
        return chart_time_breakdown(read_view("workflow_time_breakdown", db_path))
    except Exception:  # a database from before the view existed: no chart
        return None


def report_charts(db_path: Path) -> dict[str, object]:
    """Title → matplotlib Figure, for the HTML report (and for looking at them as PNG files)."""
    import matplotlib

    matplotlib.use("Agg")
    jobs = read_view("job_durations", db_path)
    daily = read_view("daily_workflow_stats", db_path)
    today = datetime.now(timezone.utc).date()
    if jobs.empty:
        return {}
    figures: dict[str, object] = {
        "Duration distribution": charts.draw_duration_boxes(charts.box_stats(jobs)),
        "Daily p50/p90 trend": charts.draw_daily_trend(charts.trend_frame(daily, today)),
        "Throughput and success rate": charts.draw_throughput(charts.throughput_frame(daily, today)),
    }
    breakdown = _time_breakdown_chart(db_path)
    if breakdown is not None:
        figures["Where the time goes"] = breakdown
    return figures


def write_html_report(db_path: Path, html_path: Path) -> Path:
    """One self-contained HTML file: charts (embedded PNG) and the report's tables."""
    sections = [f"<p>Database: {html.escape(str(db_path))} — generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC</p>"]
    figures = report_charts(db_path)
    if not figures:
        sections.append("<p>No jobs loaded yet.</p>")
    for title, figure in figures.items():
        sections.append(f"<h2>{title}</h2><img alt='{title}' src='data:image/png;base64,{_png(figure)}'>")
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
