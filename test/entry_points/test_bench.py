"""The benchmark command runs and reports every case against its baseline (timings are not asserted)."""
from diffusiondrive_ros.cli import main

FEATURE_CASES = ["features, 3 cameras 1920x1080 + 200k points", "features on the planner's device (cpu) vs on the host",
                 "lidar histogram, 120k points", "point transform, 120k points"]
ROS_CASES = ["LiDAR history decode, 2 sweeps x 120k points: earlier sweep cached vs decoded again"]
"""Cases of the node's pipeline, which need the ROS 2 message wheels."""


def _table(out: str) -> tuple[list[str], list[str], list[str], str]:
    """Case names, rows, the notes printed after the table, and the last line."""
    lines = out.splitlines()
    assert lines[0].split() == ["case", "ours", "[ms]", "baseline", "[ms]", "speed-up"]
    count = next(i for i, line in enumerate(lines[1:]) if not line.rstrip().endswith("x"))
    rows = lines[1:1 + count]
    return [line.split("  ")[0] for line in rows], rows, lines[1 + count:-1], lines[-1]


def test_bench_reports_feature_ratios_and_peak_memory(capsys):
    assert main(["bench", "--repeats", "1", "--skip-planner"]) == 0
    cases, _, notes, last = _table(capsys.readouterr().out)
    assert cases == FEATURE_CASES + ROS_CASES and notes == []
    assert last.startswith("peak RSS of this run") and last.endswith(" MiB")


def test_bench_planner_rows_compare_against_the_official_eager_path(capsys):
    """Small variants stand in for navsim here; `bench` alone compares compact with navsim (bench/README.md)."""
    args = ["bench", "--repeats", "1", "--device", "cpu", "--reference", "compact", "--skip-onnx"]
    assert main(args) == 0
    cases, _, notes, _ = _table(capsys.readouterr().out)
    assert cases == FEATURE_CASES + ROS_CASES + [
        "plan compact (cpu default threads): torch optimised vs official eager",
        "plan compact vs compact (torch optimised)"]
    [note] = notes
    assert note.startswith("plan compact, torch vs official eager: max |difference| ")
    assert float(note.split()[-2]) <= 1e-3


def test_in_process_benchmarks_run_without_ros(tmp_path):
    """`bench` without --node needs only the core dependencies (a pip install without the ROS 2 wheels): run it in a
    process where importing any ROS 2 package fails."""
    import subprocess
    import sys

    script = tmp_path / "no_ros.py"
    script.write_text(
        "import importlib.abc, sys\n"
        "ROS = {'rclpy', 'builtin_interfaces', 'std_msgs', 'sensor_msgs', 'nav_msgs', 'geometry_msgs',\n"
        "       'visualization_msgs', 'diagnostic_msgs', 'rosgraph_msgs', 'rosbags', 'mcap', 'mcap_ros2'}\n"
        "class NoRos(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name.split('.')[0] in ROS:\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}')\n"
        "sys.meta_path.insert(0, NoRos())\n"
        "from diffusiondrive_ros.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n")
    done = subprocess.run([sys.executable, str(script), "bench", "--repeats", "1", "--skip-planner"],
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    cases, _, _, _ = _table(done.stdout)
    assert cases == FEATURE_CASES  # the pipeline's cases are left out
