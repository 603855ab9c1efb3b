"""Tests of the launch file, parameters file, RViz config and Fast DDS profile shipped in share/.

ROS 2 from PyPI has no ``launch``/``launch_ros``, so the launch file is checked by its structure
(parsed with ``ast``); its helper functions that need neither are executed. Where ``launch_ros``
imports (a full ROS 2 install) one more test builds the launch description for real.
"""
from __future__ import annotations

import ast
import importlib.util
import re
import xml.etree.ElementTree as ET
from glob import glob
from pathlib import Path

import pytest
import yaml

from diffusiondrive_ros.ros.params import PARAMETERS

REPO = Path(__file__).resolve().parents[2]
LAUNCH_FILE = REPO / "launch" / "diffusiondrive.launch.py"
PARAMS_FILE = REPO / "config" / "diffusiondrive.yaml"
RVIZ_FILE = REPO / "rviz" / "diffusiondrive.rviz"
FASTDDS_PROFILE = REPO / "config" / "fastdds_large_data.xml"

PACKAGE = "diffusiondrive_ros"
EXECUTABLE = "diffusiondrive_node"
NODE_NAME = "diffusiondrive_planner"

# Every parameter of the node and its default, by ROS parameter name (nested YAML maps become
# dotted names), from the node's own declaration list; use_sim_time is declared by rclpy itself.
NODE_PARAMETERS = {name: spec.default for name, spec in PARAMETERS.items()}

# The node-private topics of INTERFACE.md; the launch file remaps every one of them.
PRIVATE_TOPICS = {
    "~/input/camera_left",
    "~/input/camera_front",
    "~/input/camera_right",
    "~/input/pointcloud",
    "~/input/odometry",
    "~/input/imu",
    "~/input/command",
    "~/output/path",
    "~/output/candidates",
}
CAMERA_TOPICS = {"~/input/camera_left", "~/input/camera_front", "~/input/camera_right"}

# Launch arguments and their defaults (None: computed, checked separately).
LAUNCH_ARGUMENTS = {
    "params_file": None,
    "use_sim_time": "false",
    "namespace": "",
    "rviz": "false",
    "camera_transport": "raw",
    "camera_left_topic": "/camera/left/image_raw",
    "camera_front_topic": "/camera/front/image_raw",
    "camera_right_topic": "/camera/right/image_raw",
    "pointcloud_topic": "/lidar/points",
    "odometry_topic": "/odometry",
    "imu_topic": "/imu",
    "command_topic": "/command",
    "path_topic": "/diffusiondrive/path",
    "candidates_topic": "/diffusiondrive/candidates",
}
# Launch argument that names the topic of each private topic.
REMAP_ARGUMENTS = {
    "~/input/camera_left": "camera_left_topic",
    "~/input/camera_front": "camera_front_topic",
    "~/input/camera_right": "camera_right_topic",
    "~/input/pointcloud": "pointcloud_topic",
    "~/input/odometry": "odometry_topic",
    "~/input/imu": "imu_topic",
    "~/input/command": "command_topic",
    "~/output/path": "path_topic",
    "~/output/candidates": "candidates_topic",
}


# --- static analysis helpers ------------------------------------------------------------------


class LaunchSource:
    """The parsed launch file with literal module constants and loop bindings resolved.

    Values built in comprehensions over literal tables, e.g.
    ``[(private, LaunchConfiguration(argument)) for private, argument, _ in TABLE]``, are
    resolved once per table row, so table-driven code is checked like written-out code.
    """

    def __init__(self, path: Path):
        self.tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        self.constants = {}
        for statement in self.tree.body:
            if isinstance(statement, ast.Assign) and len(statement.targets) == 1:
                target = statement.targets[0]
                if isinstance(target, ast.Name):
                    try:
                        self.constants[target.id] = ast.literal_eval(statement.value)
                    except ValueError:
                        continue
        self._bindings = {}
        for node in ast.walk(self.tree):
            if isinstance(node, (ast.ListComp, ast.GeneratorExp, ast.SetComp)):
                rows = self._comprehension_rows(node)
                for child in ast.walk(node.elt):
                    self._bindings.setdefault(id(child), rows)

    def _table(self, expr: ast.AST):
        """Rows of a literal table expression (a constant name or a sum of them), else None."""
        if isinstance(expr, ast.Name) and isinstance(self.constants.get(expr.id), (tuple, list)):
            return list(self.constants[expr.id])
        if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Add):
            left, right = self._table(expr.left), self._table(expr.right)
            if left is not None and right is not None:
                return left + right
        return None

    def _comprehension_rows(self, comprehension):
        """One {loop variable: value} binding per row, for a single loop over a literal table."""
        if len(comprehension.generators) != 1:
            return [{}]
        generator = comprehension.generators[0]
        rows = self._table(generator.iter)
        if rows is None:
            return [{}]
        if isinstance(generator.target, ast.Name):
            return [{generator.target.id: row} for row in rows]
        names = [getattr(element, "id", None) for element in generator.target.elts]
        return [{name: value for name, value in zip(names, row) if name} for row in rows]

    def bindings(self, node: ast.AST):
        """The loop bindings under which ``node`` is evaluated ([{}] outside comprehensions)."""
        return self._bindings.get(id(node), [{}])

    def resolve(self, expr: ast.AST, binding: dict):
        """Value of a constant, module constant or loop variable; None when not static."""
        if isinstance(expr, ast.Constant):
            return expr.value
        if isinstance(expr, ast.Name):
            if expr.id in binding:
                return binding[expr.id]
            return self.constants.get(expr.id)
        return None

    def calls(self, name: str, within: ast.AST | None = None):
        """Calls of a function or method named ``name``."""
        calls = []
        for node in ast.walk(within or self.tree):
            if isinstance(node, ast.Call):
                func = node.func
                called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
                if called == name:
                    calls.append(node)
        return calls

    def function(self, name: str) -> ast.FunctionDef:
        for statement in self.tree.body:
            if isinstance(statement, ast.FunctionDef) and statement.name == name:
                return statement
        raise AssertionError(f"{name}() is not defined at module level of {LAUNCH_FILE.name}")

    def launch_configurations(self, expr: ast.AST, binding: dict) -> set:
        """Names of the LaunchConfiguration(...) substitutions used in ``expr``."""
        return {
            self.resolve(call.args[0], binding)
            for call in self.calls("LaunchConfiguration", within=expr)
            if call.args
        }

    def remappings(self) -> dict:
        """{private topic: (topic expression, loop binding)} of every ``('~/...', topic)`` pair."""
        pairs = {}
        for pair in ast.walk(self.tree):
            if not (isinstance(pair, ast.Tuple) and len(pair.elts) == 2):
                continue
            for binding in self.bindings(pair):
                private = self.resolve(pair.elts[0], binding)
                if isinstance(private, str) and private.startswith("~/"):
                    assert private not in pairs, f"{private} remapped twice"
                    pairs[private] = (pair.elts[1], binding)
        return pairs

    def node_calls(self, package: str):
        """Node(...) calls whose package resolves to ``package``."""
        return [
            call
            for call in self.calls("Node")
            if "package" in keywords(call) and self.resolve(keywords(call)["package"], {}) == package
        ]

    def load_functions(self, *names: str) -> dict:
        """Execute only the stdlib/yaml imports, literal constants and the named functions."""
        stdlib_and_yaml = {"os", "tempfile", "yaml"}
        body = []
        for statement in self.tree.body:
            if isinstance(statement, ast.Import) and {a.name for a in statement.names} <= stdlib_and_yaml:
                body.append(statement)
            elif isinstance(statement, ast.Assign) and all(
                isinstance(t, ast.Name) and t.id in self.constants for t in statement.targets
            ):
                body.append(statement)
            elif isinstance(statement, ast.FunctionDef) and statement.name in names:
                body.append(statement)
        namespace = {}
        exec(compile(ast.Module(body=body, type_ignores=[]), str(LAUNCH_FILE), "exec"), namespace)
        return {name: namespace[name] for name in names}


def keywords(call: ast.Call) -> dict:
    return {keyword.arg: keyword.value for keyword in call.keywords if keyword.arg}


def names_in(expr: ast.AST) -> set:
    return {node.id for node in ast.walk(expr) if isinstance(node, ast.Name)}


def constants_in(expr: ast.AST) -> set:
    return {node.value for node in ast.walk(expr) if isinstance(node, ast.Constant)}


@pytest.fixture(scope="module")
def launch_source() -> LaunchSource:
    return LaunchSource(LAUNCH_FILE)


def flatten(mapping: dict, prefix: str = "") -> dict:
    """Nested parameter maps -> {dotted ROS parameter name: value}."""
    flat = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


# --- launch file --------------------------------------------------------------------------------


def test_generate_launch_description_is_defined(launch_source):
    function = launch_source.function("generate_launch_description")
    arguments = function.args
    assert not arguments.args and not arguments.posonlyargs and not arguments.kwonlyargs
    assert any(isinstance(node, ast.Return) and node.value is not None for node in ast.walk(function))
    assert launch_source.calls("LaunchDescription", within=function)


def test_planner_node(launch_source):
    nodes = launch_source.node_calls(PACKAGE)
    assert len(nodes) == 1, "expected exactly one Node(package='diffusiondrive_ros', ...)"
    kw = keywords(nodes[0])
    assert launch_source.resolve(kw["executable"], {}) == EXECUTABLE
    assert launch_source.resolve(kw["name"], {}) == NODE_NAME
    assert launch_source.resolve(kw["output"], {}) == "screen"
    assert launch_source.resolve(kw["emulate_tty"], {}) is True
    assert "namespace" in kw and "remappings" in kw and "parameters" in kw


def test_every_launch_argument_is_declared_with_its_default(launch_source):
    declared = {}
    for call in launch_source.calls("DeclareLaunchArgument"):
        for binding in launch_source.bindings(call):
            name = launch_source.resolve(call.args[0], binding)
            assert isinstance(name, str), f"cannot resolve the name of {ast.unparse(call)}"
            assert name not in declared, f"launch argument {name} declared twice"
            declared[name] = launch_source.resolve(keywords(call)["default_value"], binding)
            assert "description" in keywords(call), f"launch argument {name} has no description"
    assert set(declared) == set(LAUNCH_ARGUMENTS)
    for name, default in LAUNCH_ARGUMENTS.items():
        if default is not None:
            assert declared[name] == default, name


def test_params_file_default_is_the_package_share_config(launch_source):
    function = launch_source.function("generate_launch_description")
    share_lookups = launch_source.calls("get_package_share_directory", within=function)
    assert [launch_source.resolve(call.args[0], {}) for call in share_lookups] == [PACKAGE]
    (params_argument,) = [
        call
        for call in launch_source.calls("DeclareLaunchArgument")
        if launch_source.resolve(call.args[0], {}) == "params_file"
    ]
    default = keywords(params_argument)["default_value"]
    assert {"config", "diffusiondrive.yaml"} <= constants_in(default)


def test_remappings_cover_every_private_topic(launch_source):
    remappings = launch_source.remappings()
    assert set(remappings) == PRIVATE_TOPICS
    for private, argument in REMAP_ARGUMENTS.items():
        topic, binding = remappings[private]
        used = launch_source.launch_configurations(topic, binding)
        assert used == {argument}, f"{private} is not remapped to LaunchConfiguration('{argument}')"


def test_parameters_pass_params_file_use_sim_time_and_camera_transport(launch_source):
    (node,) = launch_source.node_calls(PACKAGE)
    parameters = keywords(node)["parameters"]
    assert isinstance(parameters, ast.List)
    overrides = [element for element in parameters.elts if isinstance(element, ast.Dict)]
    files = [element for element in parameters.elts if not isinstance(element, ast.Dict)]
    assert len(overrides) == 1 and len(files) == 1
    assert "params_file" in names_in(files[0])
    assert "params_file" in launch_source.launch_configurations(launch_source.tree, {})
    values = {launch_source.resolve(k, {}): v for k, v in zip(overrides[0].keys, overrides[0].values)}
    assert set(values) == {"use_sim_time", "camera_transport"}
    assert launch_source.launch_configurations(values["use_sim_time"], {}) == {"use_sim_time"}
    assert "camera_transport" in names_in(values["camera_transport"])


def test_rviz_node_is_optional_and_uses_the_package_config(launch_source):
    (rviz,) = launch_source.node_calls("rviz2")
    kw = keywords(rviz)
    assert launch_source.resolve(kw["executable"], {}) == "rviz2"
    (condition,) = launch_source.calls("IfCondition", within=kw["condition"])
    assert launch_source.launch_configurations(condition, {}) == {"rviz"}
    assert {"-d", "rviz", "diffusiondrive.rviz"} <= constants_in(kw["arguments"])


def test_compressed_camera_topics_get_the_image_transport_suffix(launch_source):
    camera_topic = launch_source.load_functions("_camera_topic")["_camera_topic"]
    assert camera_topic("/camera/front/image_raw", False) == "/camera/front/image_raw"
    assert camera_topic("/camera/front/image_raw", True) == "/camera/front/image_raw/compressed"
    assert camera_topic("/cam/image_raw/compressed", True) == "/cam/image_raw/compressed"
    with_suffix = {
        private
        for private, (topic, _) in launch_source.remappings().items()
        if launch_source.calls("_camera_topic", within=topic)
    }
    assert with_suffix == CAMERA_TOPICS


def test_namespaced_params_file_reaches_a_namespaced_node(launch_source, tmp_path):
    import rclpy
    from rclpy.context import Context
    from rclpy.node import Node

    rewrite = launch_source.load_functions("_namespaced_params_file")["_namespaced_params_file"]
    assert rewrite(str(PARAMS_FILE), "") == str(PARAMS_FILE)
    rewritten = Path(rewrite(str(PARAMS_FILE), "vehicle/planner_a"))
    try:
        assert list(yaml.safe_load(rewritten.read_text())) == [f"/vehicle/planner_a/{NODE_NAME}"]
        context = Context()
        rclpy.init(args=["--ros-args", "--params-file", str(rewritten)], context=context)
        try:
            node = Node(
                NODE_NAME,
                namespace="vehicle/planner_a",
                context=context,
                automatically_declare_parameters_from_overrides=True,
            )
            assert node.get_parameter("camera_side_crop").value == NODE_PARAMETERS["camera_side_crop"]
            assert node.get_parameter("lidar_extrinsic.yaw").value == 0.0
            node.destroy_node()
        finally:
            rclpy.try_shutdown(context=context)
    finally:
        rewritten.unlink()


def test_launch_description_builds_with_launch_ros(monkeypatch):
    """Build the launch description and the planner node for real.

    Needs ros2/launch and launch_ros, which only a full ROS 2 install provides (they are not on
    PyPI, so this test is skipped in a pip-only environment).
    """
    pytest.importorskip("launch_ros")
    import ament_index_python.packages
    from launch import LaunchContext, LaunchDescription
    from launch.actions import DeclareLaunchArgument, OpaqueFunction
    from launch.utilities import normalize_to_list_of_substitutions, perform_substitutions
    from launch_ros.actions import Node

    # The repository has the installed share/ layout (config/, rviz/): no install needed.
    monkeypatch.setattr(ament_index_python.packages, "get_package_share_directory", lambda _: str(REPO))
    spec = importlib.util.spec_from_file_location("diffusiondrive_launch", LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    assert isinstance(description, LaunchDescription)

    context = LaunchContext()
    arguments = [e for e in description.entities if isinstance(e, DeclareLaunchArgument)]
    assert {argument.name for argument in arguments} == set(LAUNCH_ARGUMENTS)
    for argument in arguments:
        default = perform_substitutions(context, argument.default_value)
        context.launch_configurations[argument.name] = default
    assert context.launch_configurations["params_file"] == str(PARAMS_FILE)

    context.launch_configurations["camera_transport"] = "compressed"
    (planner_function,) = [e for e in description.entities if isinstance(e, OpaqueFunction)]
    (planner,) = planner_function.execute(context)
    assert isinstance(planner, Node)
    def text(value):
        return perform_substitutions(context, normalize_to_list_of_substitutions(value))

    assert text(planner.node_package) == PACKAGE
    assert text(planner.node_executable) == EXECUTABLE
    planner._perform_substitutions(context)  # what Node.execute() does before it starts the process
    assert planner.node_name == f"/{NODE_NAME}"
    expected = {
        private: LAUNCH_ARGUMENTS[argument] + ("/compressed" if private in CAMERA_TOPICS else "")
        for private, argument in REMAP_ARGUMENTS.items()
    }
    assert dict(planner.expanded_remapping_rules) == expected


# --- parameters file ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ros_parameters() -> dict:
    document = yaml.safe_load(PARAMS_FILE.read_text(encoding="utf-8"))
    assert list(document) == [NODE_NAME]
    assert list(document[NODE_NAME]) == ["ros__parameters"]
    return document[NODE_NAME]["ros__parameters"]


def test_params_file_has_exactly_the_node_parameters_with_their_defaults(ros_parameters):
    parameters = flatten(ros_parameters)
    assert parameters.pop("use_sim_time") is False
    assert set(parameters) == set(NODE_PARAMETERS)
    for name, default in NODE_PARAMETERS.items():
        assert type(parameters[name]) is type(default), f"{name}: {parameters[name]!r}"
        assert parameters[name] == default, name


def test_every_parameter_is_documented_by_a_comment():
    lines = PARAMS_FILE.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "ros__parameters:")
    key_line = re.compile(r"^\s*[A-Za-z_][\w.]*\s*:")
    undocumented = [
        line.strip()
        for previous, line in zip(lines[start:], lines[start + 1 :])
        if key_line.match(line) and " #" not in line and not previous.strip().startswith("#")
    ]
    assert not undocumented, f"parameters without a comment: {undocumented}"


def test_rclpy_reads_the_params_file_as_intended():
    import rclpy
    from rclpy.context import Context
    from rclpy.node import Node

    context = Context()
    rclpy.init(args=["--ros-args", "--params-file", str(PARAMS_FILE)], context=context)
    try:
        node = Node(NODE_NAME, context=context, automatically_declare_parameters_from_overrides=True)
        for name, default in NODE_PARAMETERS.items():
            value = node.get_parameter(name).value
            assert type(value) is type(default) and value == default, name
        assert node.get_parameter("use_sim_time").value is False
        node.destroy_node()
    finally:
        rclpy.try_shutdown(context=context)


# --- RViz config --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rviz_config() -> dict:
    return yaml.safe_load(RVIZ_FILE.read_text(encoding="utf-8"))


def test_rviz_fixed_frame_is_base_link(rviz_config):
    manager = rviz_config["Visualization Manager"]
    assert manager["Global Options"]["Fixed Frame"] == NODE_PARAMETERS["base_frame"]
    assert manager["Views"]["Current"]["Class"].startswith("rviz_default_plugins/")
    assert all(panel["Class"].startswith("rviz_common/") for panel in rviz_config["Panels"])


@pytest.mark.parametrize(
    ("display_class", "topic"),
    [
        ("rviz_default_plugins/Path", LAUNCH_ARGUMENTS["path_topic"]),
        ("rviz_default_plugins/MarkerArray", LAUNCH_ARGUMENTS["candidates_topic"]),
        ("rviz_default_plugins/PointCloud2", LAUNCH_ARGUMENTS["pointcloud_topic"]),
        ("rviz_default_plugins/Image", LAUNCH_ARGUMENTS["camera_front_topic"]),
    ],
)
def test_rviz_shows_the_planner_topics(rviz_config, display_class, topic):
    displays = rviz_config["Visualization Manager"]["Displays"]
    matching = [d for d in displays if d["Class"] == display_class and d["Topic"]["Value"] == topic]
    assert len(matching) == 1, f"no {display_class} display of {topic}"
    assert matching[0]["Enabled"] is True


def test_rviz_subscribes_to_sensor_data_best_effort(rviz_config):
    for display in rviz_config["Visualization Manager"]["Displays"]:
        if display["Class"] in ("rviz_default_plugins/PointCloud2", "rviz_default_plugins/Image"):
            assert display["Topic"]["Reliability Policy"] == "Best Effort", display["Name"]


def test_rviz_has_grid_and_tf(rviz_config):
    classes = {display["Class"] for display in rviz_config["Visualization Manager"]["Displays"]}
    assert {"rviz_default_plugins/Grid", "rviz_default_plugins/TF"} <= classes


# --- Fast DDS profile ---------------------------------------------------------------------------

NS = {"dds": "http://www.eprosima.com"}


def test_fastdds_profile_is_a_default_participant_with_large_shared_memory():
    root = ET.parse(FASTDDS_PROFILE).getroot()
    assert root.tag == "{http://www.eprosima.com}dds"
    descriptors = {
        d.findtext("dds:transport_id", namespaces=NS): d
        for d in root.iterfind("dds:profiles/dds:transport_descriptors/dds:transport_descriptor", NS)
    }
    (participant,) = root.iterfind("dds:profiles/dds:participant", NS)
    assert participant.get("is_default_profile") == "true"
    rtps = participant.find("dds:rtps", NS)
    assert rtps.findtext("dds:useBuiltinTransports", namespaces=NS) == "false"
    used = [t.text for t in rtps.iterfind("dds:userTransports/dds:transport_id", NS)]
    assert set(used) <= set(descriptors), "userTransports names an undefined transport"
    types = {descriptors[t].findtext("dds:type", namespaces=NS): descriptors[t] for t in used}
    assert set(types) == {"SHM", "UDPv4"}
    assert int(types["SHM"].findtext("dds:segment_size", namespaces=NS)) >= 3 * 1920 * 1080 * 3
    assert "FASTDDS_DEFAULT_PROFILES_FILE" in FASTDDS_PROFILE.read_text(encoding="utf-8")


# --- installation -------------------------------------------------------------------------------


SHARE_FILES = [LAUNCH_FILE, PARAMS_FILE, RVIZ_FILE, FASTDDS_PROFILE]


def setup_py_data_files() -> list[tuple[str, list[str]]]:
    """(destination, glob patterns) of every setup.py data_files entry, f-strings resolved."""
    tree = ast.parse((REPO / "setup.py").read_text(encoding="utf-8"))
    constants = {
        statement.targets[0].id: statement.value.value
        for statement in tree.body
        if isinstance(statement, ast.Assign) and isinstance(statement.value, ast.Constant)
    }

    def text(expr: ast.AST) -> str:
        if isinstance(expr, ast.Constant):
            return expr.value
        return "".join(
            part.value if isinstance(part, ast.Constant) else constants[part.value.id]
            for part in expr.values
        )

    (data_files,) = [
        node.value for node in ast.walk(tree) if isinstance(node, ast.keyword) and node.arg == "data_files"
    ]
    entries = []
    for entry in data_files.elts:
        destination, sources = entry.elts
        globs = [call for call in ast.walk(sources) if isinstance(call, ast.Call)]
        patterns = [text(call.args[0]) for call in globs if getattr(call.func, "id", None) == "glob"]
        entries.append((text(destination), patterns))
    return entries


@pytest.mark.parametrize("path", SHARE_FILES, ids=[path.name for path in SHARE_FILES])
def test_setup_py_installs_the_file_into_share(path, monkeypatch):
    monkeypatch.chdir(REPO)
    relative = path.relative_to(REPO)
    destinations = [
        destination
        for destination, patterns in setup_py_data_files()
        if any(str(relative) in glob(pattern) for pattern in patterns)
    ]
    assert destinations == [f"share/{PACKAGE}/{relative.parent}"], f"{relative} is not installed"
