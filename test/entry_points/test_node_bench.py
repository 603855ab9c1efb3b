"""`bench --node` / `--soak`: the statistics on hand-made records, and one short real run across three processes
(sensor process -> node process -> this process). Timings are reported, never asserted."""
import argparse
import json

import pytest
from ros_graph import domain_id

from diffusiondrive_ros.bench import add_arguments
from diffusiondrive_ros.cli import main
from diffusiondrive_ros.node_bench import NodeBenchConfig, config_from_args
from diffusiondrive_ros.node_bench_report import CloudRecord, match_paths, summarize, window_edges

# Processes that need the CPUs for their timing share one xdist worker (setup.cfg: --dist loadgroup).
pytestmark = pytest.mark.xdist_group("cpu_bound_processes")

S = 10**9
MIB = 2**20


def test_paths_are_matched_to_their_cloud_by_stamp():
    clouds = [(100, 1_000), (200, 2_000), (300, 3_000)]
    paths = [(300, 3_500), (100, 1_400), (100, 9_999), (999, 5_000)]  # out of order, a repeat, a stranger
    records, unmatched = match_paths(clouds, paths)
    assert records == [CloudRecord(100, 1_000, 1_400), CloudRecord(200, 2_000, None), CloudRecord(300, 3_000, 3_500)]
    assert unmatched == 1
    assert [r.latency_s for r in records] == [400e-9, None, 500e-9]


def test_window_edges_cover_the_span_and_the_last_may_be_short():
    assert window_edges(5.0, 20.0, 5.0) == [(5.0, 10.0), (10.0, 15.0), (15.0, 20.0)]
    assert window_edges(0.0, 7.0, 3.0) == [(0.0, 3.0), (3.0, 6.0), (6.0, 7.0)]


def test_summary_leaves_out_the_warm_up_and_compares_the_last_window_with_the_first():
    # 1 cloud per second for 10 s; warm-up 2 s; windows [2, 6) and [6, 10). Latency 100 ms in the first window,
    # 300 ms in the second, where every other cloud is dropped; RSS 100 MiB then 110 MiB.
    origin = 50 * S
    latency_ns = [S // 10] * 6 + [3 * S // 10, None, 3 * S // 10, None]
    records = [CloudRecord(i, origin + i * S, None if lat is None else origin + i * S + lat)
               for i, lat in enumerate(latency_ns)]
    rss = [(origin + t * S, (100 if t < 6 else 110) * MIB) for t in range(10)] + [(origin + 12 * S, 500 * MIB)]
    load = [(origin + 3 * S, 2.0), (origin + 4 * S, 3.0), (origin + 5 * S, 9.0), (origin + 8 * S, 5.0)]
    summary = summarize(records, rss, origin, warmup_s=2.0, duration_s=10.0, window_s=4.0, baseline_s=[0.05, 0.05],
                        context={"load": load})

    assert (summary.clouds, summary.planned) == (8, 6)  # clouds 2..9; 7 and 9 dropped
    assert summary.dropped_fraction == pytest.approx(2 / 8)
    assert summary.planned_hz == pytest.approx(6 / 8) and summary.published_hz == pytest.approx(1.0)
    first, last = summary.windows
    assert (first.start_s, first.end_s, first.clouds, first.planned) == (2.0, 6.0, 4, 4)
    assert (last.clouds, last.planned) == (4, 2)
    assert first.latency.p50_ms == pytest.approx(100.0) and last.latency.p99_ms == pytest.approx(300.0)
    assert (first.rss_mib, last.rss_mib) == (100.0, 110.0)
    assert (first.context, last.context) == ({"load": 3.0}, {"load": 5.0})  # medians of the samples inside
    assert summary.drift_ratios() == pytest.approx({"rss": 1.1, "p50": 3.0, "p99": 3.0, "load": 5 / 3})
    # RSS first/last come from the stream's span; the peak from every sample (here one after the stream)
    assert (summary.rss_first_mib, summary.rss_last_mib, summary.rss_peak_mib) == (100.0, 110.0, 500.0)
    assert summary.latency.p50_ms == pytest.approx(100.0)  # of 100, 100, 100, 100, 300, 300 ms
    assert summary.latency_ratios()["p50"] == pytest.approx(2.0)  # over the 50 ms baseline


def test_soak_runs_minutes_at_20_hz_in_minute_windows():
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    soak = config_from_args(parser.parse_args(["--soak", "5", "--device", "cpu"]))
    assert (soak.duration_s, soak.rate_hz, soak.window) == (300.0, 20.0, 60.0)
    node = config_from_args(parser.parse_args(["--node", "--camera-size", "640x360"]))
    assert (node.duration_s, node.rate_hz, node.window, node.width, node.height) == (20.0, 10.0, 5.0, 640, 360)


def test_config_rejects_a_warm_up_as_long_as_the_run():
    with pytest.raises(ValueError, match=r"warmup_s: must be in \[0, duration_s = 10"):
        NodeBenchConfig(duration_s=10.0, warmup_s=10.0)


def test_short_run_across_processes_reports_every_cloud_as_planned_or_dropped(tmp_path, monkeypatch, capsys):
    """A few seconds of small frames through the real node process: every cloud the sensor process sent is either
    matched to its Path or counted dropped, with a positive latency and RSS samples of the node."""
    monkeypatch.setenv("ROS_DOMAIN_ID", str(domain_id()))
    out = tmp_path / "node.json"
    code = main(["bench", "--node", "--duration", "6", "--rate", "4", "--warmup", "0", "--window", "2",
                 "--camera-size", "320x180", "--points", "5000", "--baseline-frames", "1", "--device", "cpu",
                 "--json", str(out)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    report = json.loads(out.read_text())
    summary = report["summary"]
    assert summary["clouds"] >= 1 and summary["planned"] >= 1, summary
    assert summary["unmatched_paths"] == 0
    assert 0 < summary["latency"]["p50_ms"] <= summary["latency"]["p99_ms"]
    assert len(summary["windows"]) == 3
    assert sum(w["clouds"] for w in summary["windows"]) == summary["clouds"]
    assert summary["rss_first_mib"] > 100  # sampled from the node process, which holds torch and the model
    counters = report["node_counters"]
    assert int(counters["frames_planned"]) >= summary["planned"]  # every Path received was planned by the node
    assert int(counters["clouds_received"]) <= summary["clouds"]  # the node saw no cloud that was not sent
    assert "end to end p50 [ms] vs in-process plan" in printed and "last vs first window" in printed
