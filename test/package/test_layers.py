"""The layers import one way: pure layers never import ROS, and ROS code reaches torch only through the planner."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "diffusiondrive_ros"
ROS_MODULES = ("rclpy", "sensor_msgs", "nav_msgs", "std_msgs", "geometry_msgs", "visualization_msgs",
               "diagnostic_msgs", "builtin_interfaces", "rosbags", "tf2_ros", "rcl_interfaces", "rosgraph_msgs")


def imports_of(path: Path) -> set[str]:
    """Absolute module names imported by a file, relative imports resolved against the package."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = list(parts[: len(parts) - node.level]) if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def files(*relative: str) -> list[Path]:
    """Python files of the named modules or folders of the package."""
    found = []
    for name in relative:
        path = PACKAGE / name
        found += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return found


@pytest.mark.parametrize("path", files("model", "geometry.py", "features.py", "planner.py", "onnx_backend.py",
                                       "errors.py", "training"),
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_pure_layers_import_no_ros_and_no_upper_layer(path: Path) -> None:
    names = imports_of(path)
    assert not {n for n in names if n.split(".")[0] in ROS_MODULES}, f"{path} imports ROS"
    upper = ("diffusiondrive_ros.ros", "diffusiondrive_ros.tools", "diffusiondrive_ros.cli", "diffusiondrive_ros.demo",
             "diffusiondrive_ros.bench", "diffusiondrive_ros.node_bench")
    assert not {n for n in names if n.startswith(upper)}, f"{path} imports an upper layer"


@pytest.mark.parametrize("path", files("ros"), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_ros_layer_reaches_torch_only_through_the_planner(path: Path) -> None:
    names = imports_of(path)
    assert not {n for n in names if n.split(".")[0] == "torch" or n.startswith("diffusiondrive_ros.model")}
    assert not {n for n in names if n.startswith(("diffusiondrive_ros.tools", "diffusiondrive_ros.training"))}
