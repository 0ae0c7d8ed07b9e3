"""Duration report from the analysis database: terminal tables and a self-contained HTML file."""

from __future__ import annotations

from pathlib import Path

from pipeline.analytics import read_view


def _seconds(value: float | None) -> str:
    if value is None or value != value:
        return "-"
    value = float(value)
    if value < 120:
        return f"{value:.1f}s"
    if value < 7200:
        return f"{value / 60:.1f}m"
    if value < 172800:
        return f"{value / 3600:.1f}h"
    return f"{value / 86400:.1f}d"


def print_report(db_path: Path) -> str:
    stats = read_view("workflow_duration_stats", db_path).sort_values("jobs", ascending=False)
    table = stats[["workflow_name", "jobs", "terminal_jobs", "success_rate", "p50_seconds", "p90_seconds", "max_seconds"]].copy()
    for column in ("p50_seconds", "p90_seconds", "max_seconds"):
        table[column] = table[column].map(_seconds)
    table["success_rate"] = table["success_rate"].map(lambda rate: "-" if rate != rate else f"{rate:.0%}")
    table.columns = ["workflow", "jobs", "done", "success", "p50", "p90", "max"]
    return "Workflow durations (terminal jobs)\n" + table.to_string(index=False)


def write_html_report(db_path: Path, html_path: Path) -> Path:
    stats = read_view("workflow_duration_stats", db_path)
    html_path.write_text(
        "<!doctype html><meta charset='utf-8'><title>UP job durations</title>"
        "<h1>UP workflow job durations</h1>" + stats.to_html(index=False),
        encoding="utf-8",
    )
    return html_path
