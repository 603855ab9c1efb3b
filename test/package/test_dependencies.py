"""Every third-party module the package imports is declared: as a rosdep key in package.xml, and in setup.py in
install_requires or the extra of the layer that imports it (found by parsing every import of the package).
Optional modules, imported only inside functions or under `except ImportError`, need only a setup.py extra.
"""
from __future__ import annotations

import ast
import re
import runpy
import sys
import xml.etree.ElementTree as ET
from collections import defaultdict
from functools import cache
from pathlib import Path

import pytest
import setuptools

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "diffusiondrive_ros"
ROS_PACKAGES = ("rclpy", "rcl_interfaces", "builtin_interfaces", "std_msgs", "sensor_msgs", "nav_msgs",
                "geometry_msgs", "visualization_msgs", "diagnostic_msgs", "rosgraph_msgs")

# import name -> (rosdep key in package.xml, distribution in setup.py). Import names differ from distribution
# names, so a new import needs a row here. A None key marks an optional module (checked to be imported lazily).
DECLARATIONS: dict[str, tuple[str | None, str | None]] = {
    "numpy": ("python3-numpy", "numpy"),
    "torch": ("python3-torch", "torch"),
    "cv2": ("python3-opencv", "opencv-python-headless"),
    "yaml": ("python3-yaml", "pyyaml"),
    "transforms3d": ("python3-transforms3d", "transforms3d"),
    "tqdm": ("python3-tqdm", "tqdm"),
    "rosbags": ("python3-rosbags-pip", "rosbags"),
    # rosdep has no keys for these two; the pip packages of the keys given require them
    "mcap": ("mcap-ros2-support", "mcap"),
    "apsw": ("python3-rosbags-pip", "apsw"),
    "imageio_ffmpeg": (None, "imageio-ffmpeg"),  # MP4 output
    "onnx": (None, "onnx"),  # ONNX export
    "onnxruntime": (None, "onnxruntime"),  # the ONNX backend
    "tf2_ros": ("tf2_ros", None),  # not on PyPI: the node uses it where a ROS install has it
    **{name: (name, "ros-" + name.replace("_", "-")) for name in ROS_PACKAGES},
}


def layer_groups(path: Path) -> set[str]:
    """The setup.py groups a file's imports may come from: the pure layers only install_requires, ros/ also the
    `ros` extra, the tools, training and command-line entry points every extra.
    """
    top = path.relative_to(PACKAGE).parts[0]
    if top in ("model", "geometry.py", "features.py", "planner.py", "__init__.py"):
        return {"install_requires"}
    if top == "ros":
        return {"install_requires", "ros"}
    return {"install_requires", "ros", "tools"}


class _Imports(ast.NodeVisitor):
    """(top-level module, lazy) of every absolute import; lazy: inside a function, under a try that handles
    ImportError, or under `if TYPE_CHECKING`, so importing the package does not need the module.
    """

    def __init__(self):
        self.found: list[tuple[str, bool]] = []
        self._lazy = 0

    def _visit_lazily(self, statements) -> None:
        self._lazy += 1
        for statement in statements:
            self.visit(statement)
        self._lazy -= 1

    def visit_FunctionDef(self, node) -> None:
        self._visit_lazily(node.body)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Try(self, node: ast.Try) -> None:
        caught = {n.id for handler in node.handlers if handler.type for n in ast.walk(handler.type)
                  if isinstance(n, ast.Name)}
        if caught & {"ImportError", "ModuleNotFoundError"}:
            self._visit_lazily(node.body)
            for statement in (*node.handlers, *node.orelse, *node.finalbody):
                self.visit(statement)
        else:
            self.generic_visit(node)

    def visit_If(self, node: ast.If) -> None:
        if "TYPE_CHECKING" in ast.unparse(node.test):
            self._visit_lazily(node.body)
            for statement in node.orelse:
                self.visit(statement)
        else:
            self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        self.found += [(alias.name.split(".")[0], self._lazy > 0) for alias in node.names]

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level == 0:
            self.found.append((node.module.split(".")[0], self._lazy > 0))


@cache
def third_party_imports() -> dict[str, list[tuple[Path, bool]]]:
    """Top-level module -> (file, whether that import is lazy) for every non-stdlib absolute import."""
    found = defaultdict(list)
    for path in sorted(PACKAGE.rglob("*.py")):
        finder = _Imports()
        finder.visit(ast.parse(path.read_text(encoding="utf-8")))
        for top, lazy in finder.found:
            if top not in sys.stdlib_module_names and top not in ("__future__", PACKAGE.name):
                found[top].append((path, lazy))
    return found


def distribution(requirement: str) -> str:
    return re.split(r"[\[<>=~!; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


@pytest.fixture(scope="module")
def setup_groups(monkeypatch_module) -> dict[str, set[str]]:
    """setup.py's install_requires and extras as group -> distribution names (setup() captured, not run)."""
    captured = {}
    monkeypatch_module.setattr(setuptools, "setup", lambda **kwargs: captured.update(kwargs))
    monkeypatch_module.chdir(REPO)
    runpy.run_path(str(REPO / "setup.py"))
    groups = {"install_requires": captured["install_requires"], **captured["extras_require"]}
    return {group: {distribution(r) for r in requirements} for group, requirements in groups.items()}


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def package_xml_keys() -> set[str]:
    root = ET.parse(REPO / "package.xml").getroot()
    return {element.text.strip() for tag in ("depend", "exec_depend") for element in root.iter(tag)}


def test_every_imported_module_has_a_declaration_row():
    missing = sorted(set(third_party_imports()) - set(DECLARATIONS))
    assert not missing, f"imports without a row in DECLARATIONS (declare them in package.xml and setup.py): {missing}"


@pytest.mark.parametrize("module", sorted(DECLARATIONS))
def test_an_imported_module_is_declared_in_package_xml(module):
    imports = third_party_imports()
    assert module in imports, f"{module} is no longer imported: remove its row from DECLARATIONS"
    key = DECLARATIONS[module][0]
    if key is None:
        plain = sorted({str(path.relative_to(REPO)) for path, lazy in imports[module] if not lazy})
        assert not plain, (f"{module} has no rosdep key in package.xml, so it must stay optional (imported inside a "
                           f"function or under except ImportError); imported at module level in {plain}")
    else:
        assert key in package_xml_keys(), f"{module}: add <exec_depend>{key}</exec_depend> to package.xml"


@pytest.mark.parametrize("module", sorted(name for name, (_, dist) in DECLARATIONS.items() if dist))
def test_an_imported_module_is_declared_in_setup_py_for_its_layer(module, setup_groups):
    imports = third_party_imports()
    assert module in imports, f"{module} is no longer imported: remove its row from DECLARATIONS"
    dist = DECLARATIONS[module][1]
    declared_in = {group for group, names in setup_groups.items() if dist in names}
    for path, lazy in imports[module]:
        allowed = set(setup_groups) - {"dev"} if lazy else layer_groups(path)
        assert declared_in & allowed, (f"{path.relative_to(REPO)} imports {module}: declare {dist} in one of "
                                       f"{sorted(allowed)} of setup.py (it is in {sorted(declared_in) or 'none'})")
