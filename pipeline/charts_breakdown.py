""""Where the time goes" chart: per workflow, median queue / processing / retry time with bounds.

Reads ``workflow_time_breakdown``. One panel per workflow with its own time axis (workflows
differ by orders of magnitude, and a log axis would distort stacked lengths). Each segment is
the phase's p50 of per-job best estimates; a whisker where one phase gives way to the next spans
the mean bound width of that change (set by the poll interval). The end is exact: a finished
job's ``updated_at`` is when it finished.
"""

from __future__ import annotations

import pandas as pd

PHASES = (("queue", "queue (created)", "#9ecae1"), ("processing", "processing (in-process)", "#3182bd"),
          ("retry", "waiting in retry (median: 0 unless most jobs retry)", "#fd8d3c"))


def _unit(seconds: float) -> tuple[float, str]:
    for limit, divisor, unit in ((120, 1, "s"), (7200, 60, "min"), (172800, 3600, "h")):
        if seconds < limit:
            return divisor, unit
    return 86400, "d"


def chart_time_breakdown(breakdown: pd.DataFrame) -> object | None:
    """The figure, or None when no workflow has a job observed from its queue to its end."""
    import matplotlib.pyplot as plt

    rows = breakdown[breakdown.complete_jobs > 0].sort_values("workflow_name")
    if rows.empty:
        return None
    figure, axes_list = plt.subplots(len(rows), 1, figsize=(9, 1.25 * len(rows) + 1.2), squeeze=False)
    for axes, (_, row) in zip(axes_list[:, 0], rows.iterrows()):
        reach = sum(row[f"{name}_p50_seconds"] + row[f"{name}_mean_bound_seconds"] / 2 for name, _, _ in PHASES)
        divisor, unit = _unit(max(reach, 1.0))
        values = [(row[f"{name}_p50_seconds"] / divisor, row[f"{name}_mean_bound_seconds"] / divisor, label, color)
                  for name, label, color in PHASES]
        last = max((index for index, (value, _, _, _) in enumerate(values) if value > 0), default=-1)
        left = 0.0
        for index, (value, width, label, color) in enumerate(values):
            axes.barh(0, value, left=left, color=color, label=label, height=0.6, edgecolor="white")
            left += value
            # a whisker where one phase gives way to the next: how far that change may lie from the
            # estimate; a finished job's end is exact (its updated_at), so the last edge has none
            if index < last and width > 0:
                axes.errorbar(left, 0, xerr=[[min(width / 2, left)], [width / 2]], fmt="none",
                              ecolor="black", elinewidth=1, capsize=4)
        axes.set_yticks([0], [f"{row.workflow_name}\n{int(row.complete_jobs)} job{'s' if row.complete_jobs != 1 else ''}, {row.share_retried:.0%} retried"])
        axes.set_xlim(0, max(reach / divisor, left) * 1.05 or 1)
        axes.set_xlabel(unit, fontsize=8, labelpad=1)
        axes.tick_params(axis="x", labelsize=8)
        axes.grid(axis="x", alpha=0.3)
    axes_list[0, 0].set_title("Where the time goes: median per phase (jobs seen from queue to end);\n"
                              "whiskers: where each phase change may lie (mean bound width, set by the poll interval)", fontsize=10)
    handles, labels = axes_list[0, 0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=3, frameon=False, fontsize=8)
    figure.tight_layout(rect=(0, 0.06, 1, 1))
    return figure
