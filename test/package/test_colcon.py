"""The package builds as ament_python in a colcon workspace and installs everything a ROS user expects."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGE = "diffusiondrive_ros"


def _colcon(*args, cwd):
    colcon = shutil.which("colcon") or str(Path(sys.executable).with_name("colcon"))
    return subprocess.run([colcon, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_colcon_build_installs_the_ament_package(tmp_path):
    source = tmp_path / "src" / PACKAGE
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".venv", ".git", "build", "install", "log", "*.egg-info", "__pycache__", "demo_output", ".pytest_cache"))
    listed = _colcon("list", cwd=tmp_path)
    assert f"{PACKAGE}\t" in listed.stdout and "(ros.ament_python)" in listed.stdout, listed.stdout + listed.stderr
    built = _colcon("build", "--event-handlers", "console_direct-", cwd=tmp_path)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]

    prefix = tmp_path / "install" / PACKAGE
    share = prefix / "share" / PACKAGE
    assert (prefix / "share" / "ament_index" / "resource_index" / "packages" / PACKAGE).is_file()
    for relative in ("package.xml", "launch/diffusiondrive.launch.py", "config/diffusiondrive.yaml",
                     "config/fastdds_large_data.xml", "rviz/diffusiondrive.rviz"):
        assert (share / relative).is_file(), relative
    for executable in ("diffusiondrive_node", "diffusiondrive-ros"):
        assert os.access(prefix / "lib" / PACKAGE / executable, os.X_OK), executable

    found = subprocess.run(
        ["bash", "-c", f"source {tmp_path}/install/setup.bash && {sys.executable} -c "
         "\"from ament_index_python.packages import get_package_share_directory as g; "
         "print(g('diffusiondrive_ros'))\""],
        capture_output=True, text=True, timeout=60)
    assert found.stdout.strip() == str(share), found.stderr
