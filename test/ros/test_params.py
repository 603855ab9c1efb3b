"""The parameter table and its checks, and the parameters on rclpy nodes: declared with ranges and read-only flags,
integers accepted for doubles, unknown names dropped, and live changes checked, refused with a reason or applied.
"""
import math
from pathlib import Path

import pytest
from node_in_process import ClientSide, SpinningNode
from rclpy.parameter import Parameter

from diffusiondrive_ros.ros.params import (
    NODE_NAME,
    PARAMETERS,
    ParameterError,
    check_parameter,
    load_params_file,
    write_params_file,
)

PARAMS_FILE = Path(__file__).resolve().parents[2] / "config" / "diffusiondrive.yaml"
LIVE = {"sync_tolerance_s", "sync_wait_s", "acceleration_window_s", "path_prefix_current_pose", "diagnostics_period_s",
        "stale_timeout_s", "latency_warn_s", "min_planning_rate_hz"} | {
    f"lidar_extrinsic.{axis}" for axis in ("x", "y", "z", "roll", "pitch", "yaw")}


def test_an_integer_is_taken_for_a_double_but_not_the_other_way_round():
    value = check_parameter("lidar_extrinsic.z", 2)
    assert value == 2.0 and type(value) is float
    with pytest.raises(ParameterError, match=r"^parameter seed: must be of type integer, got 2\.0 \(double\)$"):
        check_parameter("seed", 2.0)
    with pytest.raises(ParameterError, match=r"^parameter sync_tolerance_s: must be of type double, got True \(bool"):
        check_parameter("sync_tolerance_s", True)


@pytest.mark.parametrize("name, value, message", [
    ("sync_tolerance_s", -0.5, "parameter sync_tolerance_s: must be from 0.001 to 10.0, got -0.5"),
    ("sync_tolerance_s", math.nan, "parameter sync_tolerance_s: must be from 0.001 to 10.0, got nan"),
    ("camera_crop_top", 540, "parameter camera_crop_top: must be from 0 to 539, got 540"),
    ("default_command", 4, "parameter default_command: must be from 0 to 3, got 4"),
    ("device", "tpu", "parameter device: must be auto, cpu, cuda or cuda:<index>, got 'tpu'"),
    ("precision", "fp8", "parameter precision: must be one of fp32, fp16, bf16, got 'fp8'"),
    ("camera_transport", "theora", "parameter camera_transport: must be one of raw, compressed, got 'theora'"),
    ("base_frame", "/base_link", "parameter base_frame: must be a frame id without spaces or a leading '/', "
                                 "got '/base_link'"),
    ("base_frame", "", "parameter base_frame: must be a frame id without spaces or a leading '/', got ''"),
    ("use_tf", "yes", "parameter use_tf: must be of type bool, got 'yes' (string)"),
    ("checkpoint", 7, "parameter checkpoint: must be of type string, got 7 (integer)"),
])
def test_a_bad_value_is_refused_with_one_line_naming_it(name, value, message):
    with pytest.raises(ParameterError) as error:
        check_parameter(name, value)
    assert str(error.value) == message


@pytest.mark.parametrize("name, value", [
    ("sync_tolerance_s", 0.001), ("sync_tolerance_s", 10.0), ("camera_crop_top", 539), ("default_command", 0),
    ("device", "cuda:1"), ("device", "cpu"), ("base_frame", "ego"), ("lidar_extrinsic.yaw", -math.pi),
])
def test_values_at_the_edges_are_allowed(name, value):
    assert check_parameter(name, value) == value


def test_every_default_is_allowed():
    for name, spec in PARAMETERS.items():
        assert check_parameter(name, spec.default) == spec.default, name


def test_a_params_file_is_checked_like_the_node_checks_it(tmp_path):
    values = load_params_file(write_params_file(tmp_path / "ok.yaml", {"lidar_extrinsic": {"z": 2}, "seed": 4}))
    assert values["lidar_extrinsic.z"] == 2.0 and type(values["lidar_extrinsic.z"]) is float and values["seed"] == 4
    with pytest.raises(ParameterError, match="^parameter sync_wait_s: must be from 0.0 to 10.0, got 50.0$"):
        load_params_file(write_params_file(tmp_path / "bad.yaml", {"sync_wait_s": 50.0}))


def yaml_comments() -> dict[str, str]:
    """Parameter name -> its comment in the params file (the comment lines just above it and the one on its line)."""
    lines = PARAMS_FILE.read_text(encoding="utf-8").splitlines()
    comments, block, path = {}, [], []
    for line in lines[lines.index("  ros__parameters:") + 1:]:
        text = line.strip()
        if text.startswith("#"):
            block.append(text)
            continue
        if text:
            key, _, rest = text.partition(":")
            depth = (len(line) - len(line.lstrip())) // 2 - 2
            path = path[:depth] + [key]
            comments[".".join(path)] = " ".join(block + [rest.partition("#")[2]])
        block = []
    return comments


def test_the_params_file_marks_exactly_the_live_parameters():
    assert {name for name, spec in PARAMETERS.items() if spec.live} == LIVE
    comments = yaml_comments()
    assert {name for name in PARAMETERS if "[live]" in comments[name]} == LIVE


def plain_node(args: list[str]) -> SpinningNode:
    from rclpy.node import Node

    return SpinningNode(lambda context: Node(NODE_NAME, context=context,
                                             automatically_declare_parameters_from_overrides=True),
                        ["--ros-args", *args])


def test_parameters_are_declared_with_ranges_read_only_flags_and_coerced_overrides():
    from diffusiondrive_ros.ros.node_parameters import declare_node_parameters

    graph = plain_node(["-p", "lidar_extrinsic.z:=2", "-p", "default_command:=1", "-p", "sync_tolerence_s:=0.3"])
    try:
        node = graph.node
        values = declare_node_parameters(node)
        assert values["lidar_extrinsic.z"] == 2.0 and values["default_command"] == 1
        assert node.get_parameter("lidar_extrinsic.z").type_ == Parameter.Type.DOUBLE
        assert not node.has_parameter("sync_tolerence_s")  # the misspelt name is dropped, not kept unread
        device, tolerance, crop = node.describe_parameters(["device", "sync_tolerance_s", "camera_crop_top"])
        assert device.read_only and "read at start-up only" in device.additional_constraints
        assert not tolerance.read_only
        assert (tolerance.floating_point_range[0].from_value, tolerance.floating_point_range[0].to_value) == (0.001, 10)
        assert crop.read_only and (crop.integer_range[0].from_value, crop.integer_range[0].to_value) == (0, 539)
    finally:
        graph.close()


def test_a_bad_override_stops_the_declaration_before_anything_is_declared():
    from diffusiondrive_ros.ros.node_parameters import declare_node_parameters

    graph = plain_node(["-p", "seed:=1.5"])
    try:
        with pytest.raises(ParameterError, match=r"^parameter seed: must be of type integer, got 1\.5 \(double\)$"):
            declare_node_parameters(graph.node)
        assert not [name for name in PARAMETERS if graph.node.has_parameter(name)]
    finally:
        graph.close()


def test_live_changes_are_checked_then_applied_and_read_only_ones_refused():
    from diffusiondrive_ros.ros.node_parameters import LiveParameters, declare_node_parameters

    def validate(p):
        if p["sync_tolerance_s"] > p["stale_timeout_s"]:
            raise ValueError("sync_tolerance_s beyond stale_timeout_s")

    graph = plain_node([])
    try:
        node = graph.node
        applied = []
        LiveParameters(node, declare_node_parameters(node), validate, applied.append)

        (result,) = node.set_parameters([Parameter("stale_timeout_s", value=3)])  # `ros2 param set x 3` sends an int
        assert result.successful, result.reason
        assert node.get_parameter("stale_timeout_s").type_ == Parameter.Type.DOUBLE
        assert applied[-1]["stale_timeout_s"] == 3.0

        (result,) = node.set_parameters([Parameter("sync_tolerance_s", value=5.0)])
        assert not result.successful and result.reason == "sync_tolerance_s beyond stale_timeout_s"
        (result,) = node.set_parameters([Parameter("sync_tolerance_s", value=-1.0)])
        assert not result.successful and "out of range" in result.reason
        (result,) = node.set_parameters([Parameter("device", value="cpu")])
        assert not result.successful and "read-only" in result.reason
        result = node.set_parameters_atomically([Parameter("latency_warn_s", value=1.0),
                                                 Parameter("sync_tolerance_s", value=5.0)])
        assert not result.successful
        assert len(applied) == 1 and node.get_parameter("latency_warn_s").value == PARAMETERS["latency_warn_s"].default
    finally:
        graph.close()


def test_live_changes_through_the_parameter_service_reach_the_running_node():
    from rclpy.parameter_client import AsyncParameterClient

    from diffusiondrive_ros.ros.node import DiffusionDriveNode

    graph = SpinningNode(lambda context: DiffusionDriveNode(context=context, namespace="test_params"),
                         ["--ros-args", "-p", "device:=cpu"])
    client_side = ClientSide()
    try:
        node = graph.node
        client = AsyncParameterClient(client_side.node, f"/test_params/{NODE_NAME}")
        assert client.wait_for_services(timeout_sec=60)
        changes = [Parameter("sync_tolerance_s", value=0.2), Parameter("stale_timeout_s", value=2),
                   Parameter("path_prefix_current_pose", value=True), Parameter("lidar_extrinsic.z", value=1.5),
                   Parameter("diagnostics_period_s", value=0.5), Parameter("latency_warn_s", value=0.75),
                   Parameter("min_planning_rate_hz", value=1)]
        results = client_side.result(client.set_parameters(changes)).results
        assert all(r.successful for r in results), [r.reason for r in results]
        assert node.pipeline.config.sync.sync_tolerance_s == 0.2 and node.pipeline.sync.config.sync_tolerance_s == 0.2
        assert node.pipeline.config.path_prefix_current_pose is True
        assert node.pipeline.config.lidar_extrinsic.z == 1.5
        assert node.stale_timeout_s == 2.0
        assert node.diagnostics_timer.timer_period_ns == 500_000_000
        assert (node.health.latency_warn_s, node.health.min_planning_rate_hz) == (0.75, 1.0)

        refused = client_side.result(client.set_parameters([
            Parameter("checkpoint", value="other.pt"), Parameter("camera_transport", value="compressed"),
            Parameter("sync_wait_s", value=30.0)])).results
        assert [r.successful for r in refused] == [False, False, False]
        assert "read-only" in refused[0].reason and "read-only" in refused[1].reason
        assert "sync_wait_s" in refused[2].reason
        assert node.pipeline.config.camera_transport == "raw"
        assert node.pipeline.config.sync.sync_wait_s == PARAMETERS["sync_wait_s"].default
    finally:
        client_side.close()
        graph.close()
