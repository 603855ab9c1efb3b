"""The benchmark command runs and reports every case against its baseline (timings are not asserted)."""
from diffusiondrive_ros.cli import main

FEATURE_CASES = ["features, 3 cameras 1920x1080 + 200k points", "features on the planner's device (cpu) vs on the host",
                 "lidar histogram, 120k points", "point transform, 120k points"]


def _table(out: str) -> tuple[list[str], list[str], str]:
    lines = out.splitlines()
    assert lines[0].split() == ["case", "ours", "[ms]", "baseline", "[ms]", "speed-up"]
    rows = lines[1:-1]
    assert all(line.rstrip().endswith("x") for line in rows)
    return [line.split("  ")[0] for line in rows], rows, lines[-1]


def test_bench_reports_feature_ratios_and_peak_memory(capsys):
    assert main(["bench", "--repeats", "1", "--skip-planner"]) == 0
    cases, _, last = _table(capsys.readouterr().out)
    assert cases == FEATURE_CASES
    assert last.startswith("peak RSS of this run") and last.endswith(" MiB")


def test_bench_planner_rows_compare_against_the_official_eager_path(capsys):
    """Small variants stand in for navsim here; `bench` alone compares compact with navsim (bench/README.md)."""
    args = ["bench", "--repeats", "1", "--device", "cpu", "--reference", "compact", "--skip-onnx"]
    assert main(args) == 0
    cases, _, _ = _table(capsys.readouterr().out)
    assert cases == FEATURE_CASES + ["plan compact (cpu default threads): torch optimised vs official eager",
                                     "plan compact vs compact (torch optimised)"]
