"""The benchmark command runs and reports every case against its baseline (timings are not asserted)."""
from diffusiondrive_ros.cli import main


def test_bench_reports_ratios(capsys):
    assert main(["bench", "--repeats", "1", "--device", "cpu"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["case", "ours", "[ms]", "baseline", "[ms]", "speed-up"]
    cases = [line.split("  ")[0] for line in lines[1:]]
    assert cases == ["lidar histogram, 120k points", "point transform, 120k points"]
    assert all(line.rstrip().endswith("x") for line in lines[1:])
