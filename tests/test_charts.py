"""The numbers each chart draws (pipeline.charts), on small frames shaped like the views' rows."""

from __future__ import annotations

import math
from datetime import date, timedelta

import matplotlib
import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline import charts

matplotlib.use("Agg")
TODAY = date(2026, 11, 30)


def _jobs(durations: dict[str, list[float]]) -> pd.DataFrame:
    rows = [(name, seconds, True) for name, values in durations.items() for seconds in values]
    frame = pd.DataFrame(rows, columns=["workflow_name", "elapsed_seconds", "is_terminal"])
    running = pd.DataFrame([("fast", 99999.0, False), ("fast", np.nan, True)], columns=frame.columns)
    return pd.concat([frame, running], ignore_index=True)


def _daily(rows: list[tuple[date, str, int]]) -> pd.DataFrame:
    """daily_workflow_stats rows: p50 = 10 x jobs, p90 = 20 x jobs, two in three succeeded, the rest failed."""
    return pd.DataFrame(
        [
            {"completion_date": day, "workflow_name": name, "completed_jobs": jobs, "p50_seconds": 10.0 * jobs,
             "p90_seconds": 20.0 * jobs, "succeeded_jobs": jobs - jobs // 3, "failed_jobs": jobs // 3}
            for day, name, jobs in rows
        ]
    )


def test_box_stats_are_explicit_percentiles_with_counts():
    rng = np.random.default_rng(1)
    fast, slow = np.exp(rng.normal(np.log(40), 1.0, 400)), np.exp(rng.normal(np.log(3600), 0.5, 50))
    stats = charts.box_stats(_jobs({"slow": list(slow), "fast": list(fast)}))
    assert list(stats.index) == ["fast", "slow"]  # fastest first; the running and the unknown job are left out
    assert list(stats.jobs) == [400, 50]
    for name, values in (("fast", fast), ("slow", slow)):
        for percentile in charts.BOX_PERCENTILES:
            assert stats.loc[name, f"p{percentile}"] == pytest.approx(np.percentile(values, percentile))
        # a lognormal is symmetric in log: the whiskers are about as far below the median as above it,
        # which 1.5 IQR whiskers on raw seconds are not (they reach the minimum on the fast side)
        below = math.log(stats.loc[name, "p50"] / stats.loc[name, "p5"])
        above = math.log(stats.loc[name, "p95"] / stats.loc[name, "p50"])
        assert below == pytest.approx(above, rel=0.35)
        assert stats.loc[name, "min"] < stats.loc[name, "p5"] and stats.loc[name, "max"] > stats.loc[name, "p95"]


@given(st.floats(0.001, 1e7), st.floats(1.0, 1e5))
def test_duration_ticks_cover_the_data_in_round_human_units(low, factor):
    high = low * factor
    ticks = charts.duration_ticks(low, high)
    assert 2 <= len(ticks) <= 7 and ticks == sorted(ticks)
    assert all(later / earlier >= 1.4 for earlier, later in zip(ticks, ticks[1:]))  # labels never crowd
    inside = [tick for tick in ticks if low <= tick <= high]
    assert len(inside) >= 2 or (ticks[0] <= low * 1.0001 and ticks[-1] >= high / 1.0001) or factor < 3
    assert all(tick in charts.NICE_SECONDS for tick in ticks)


def test_duration_labels():
    assert [charts.duration_label(value) for value in (0.5, 1, 45, 90, 600, 5400, 86400, 7 * 86400)] == [
        "500 ms", "1 s", "45 s", "1.5 min", "10 min", "1.5 h", "1 d", "7 d"]
    assert charts.duration_ticks(30, 50) == [30.0, 45.0, 60.0] or charts.duration_ticks(30, 50)[0] <= 30


def test_trend_has_gaps_shared_dates_and_no_p90_on_small_days():
    day = TODAY - timedelta(days=6)
    daily = _daily([(day, "a", 10), (day + timedelta(days=1), "a", 2), (day + timedelta(days=3), "a", 7),
                    (day + timedelta(days=6), "b", 5)])
    trend = charts.trend_frame(daily, TODAY)
    assert len(trend) == 2 * 7  # both workflows on the same seven days
    a = trend[trend.workflow_name == "a"].set_index("completion_date")
    assert list(a.completed_jobs) == [10, 2, 0, 7, 0, 0, 0]
    assert a.p50_seconds.isna().tolist() == [False, False, True, False, True, True, True]  # gaps, not bridges
    assert a.p90_seconds.notna().tolist() == [True, False, False, True, False, False, False]  # p90 only with >= 5 jobs
    assert a.is_low_count.tolist() == [False, True, False, False, False, False, False]
    assert trend[trend.is_partial].completion_date.dt.date.unique().tolist() == [TODAY]


def test_throughput_marks_the_partial_day_and_clips_one_outlier():
    start = TODAY - timedelta(days=29)
    rows = [(start + timedelta(days=offset), "a", 10 + offset % 4) for offset in range(29)]
    rows += [(start + timedelta(days=12), "b", 3), (TODAY, "a", 111)]
    throughput = charts.throughput_frame(_daily(rows), TODAY)
    assert len(throughput) == 30 and throughput.is_partial.tolist() == [False] * 29 + [True]
    assert throughput.total.iloc[12] == 10 + 12 % 4 + 3 and throughput["jobs: b"].sum() == 3
    assert throughput.success_rate.iloc[0] == pytest.approx(7 / 10)  # 10 jobs: 7 succeeded, 3 failed
    top = charts.throughput_ylimit(throughput.total)
    assert throughput.total.iloc[:29].max() < top < 111 / 2  # 29 ordinary days keep most of the chart
    ordinary = charts.throughput_ylimit(throughput.total.iloc[:29])
    assert ordinary == pytest.approx(throughput.total.iloc[:29].max() * 1.15)  # nothing clipped when nothing stands out


def test_success_rate_is_a_gap_without_decided_jobs():
    daily = _daily([(TODAY - timedelta(days=2), "a", 1), (TODAY, "a", 6)])  # 1 job: succeeded; the day between: none
    throughput = charts.throughput_frame(daily, TODAY)
    assert throughput.decided.tolist() == [1, 0, 6]
    assert throughput.success_rate.iloc[0] == 1.0 and math.isnan(throughput.success_rate.iloc[1])


def test_histogram_bins_are_log_spaced_over_the_data():
    values = pd.Series([3.0, 40.0, 600.0, 86400.0 * 4])
    edges = charts.histogram_bins(values, bins=30)
    assert len(edges) == 31 and edges[0] == 3.0 and edges[-1] >= values.max()
    ratios = edges[1:] / edges[:-1]
    assert np.allclose(ratios, ratios[0])  # equal width on a log axis
    assert charts.histogram_bins(pd.Series([5.0, 5.0]))[0] < 5.0 < charts.histogram_bins(pd.Series([5.0, 5.0]))[-1]


def test_each_chart_draws_from_its_numbers():
    """The figures carry the numbers above: panel per workflow, axes fitted, partial day, clipped outlier."""
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(2)
    jobs = _jobs({"fast": list(np.exp(rng.normal(3, 0.5, 60))), "slow": list(np.exp(rng.normal(9, 0.5, 60)))})
    boxes = charts.draw_duration_boxes(charts.box_stats(jobs))
    labels = [label.get_text() for label in boxes.axes[0].get_yticklabels()]
    assert labels == ["fast  (n=60)", "slow  (n=60)"]
    low, high = boxes.axes[0].get_xlim()
    assert low <= jobs[jobs.is_terminal].elapsed_seconds.min() and high >= charts.box_stats(jobs)["max"].max()
    daily = _daily([(TODAY - timedelta(days=offset), name, 6) for offset in range(5) for name in ("a", "b", "c", "d")])
    trend = charts.draw_daily_trend(charts.trend_frame(daily, TODAY))
    panels = [axes for axes in trend.axes if axes.get_visible()]
    assert len(panels) == 4 and len({axes.get_xlim() for axes in panels}) == 1  # shared time axis
    assert all(axes.get_yscale() == "log" and axes.get_ylim()[0] >= 30 for axes in panels)  # fitted: p50 is 60 s
    assert any("partial" in text.get_text() for text in trend.legends[0].get_texts())
    spikes = _daily([(TODAY - timedelta(days=offset), "a", 500 if offset == 3 else 10) for offset in range(10)])
    throughput = charts.draw_throughput(charts.throughput_frame(spikes, TODAY))
    bars, rates = throughput.axes
    assert bars.get_ylim()[1] < 100 and any("500" in text.get_text() for text in bars.texts)
    assert rates.get_ylim() == (-0.03, 1.03) and rates.get_legend() is not None
    histograms = charts.draw_duration_histograms(jobs)
    assert len([axes for axes in histograms.axes if axes.get_visible()]) == 2
    plt.close("all")
