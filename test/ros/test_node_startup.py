"""Start-up of the real node process: a bad parameter (from -p or a params file), checkpoint or device ends it with
exit code 1 and one line naming the cause, never a traceback; good values, an integer for a double included, start
it, and its parameter service then takes live changes and refuses read-only or out-of-range ones with the reason.
"""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from node_in_process import ClientSide
from rcl_interfaces.msg import ParameterType
from rclpy.parameter import Parameter
from ros_graph import ros_env

from diffusiondrive_ros.ros.params import NODE_NAME
from diffusiondrive_ros.tools.processes import interrupt

pytestmark = pytest.mark.xdist_group("cpu_bound_processes")

PREFIX = f"{NODE_NAME}: cannot start: "
NAMESPACE = "test_node_startup"  # apart from any other planner in the domain


def node_command(*ros_args: str) -> list[str]:
    return [sys.executable, "-m", "diffusiondrive_ros.ros.node", "--ros-args", "-r", f"__ns:=/{NAMESPACE}", *ros_args]


def params_file(path: Path, params: dict) -> Path:
    """A params file for the node in NAMESPACE (a plain node-name key would not reach it)."""
    path.write_text(yaml.safe_dump({f"/{NAMESPACE}/{NODE_NAME}": {"ros__parameters": params}}))
    return path


class RunsCode:
    """Unpickling this creates the directory `path`: a checkpoint holding it runs code when loaded unsafely."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return os.mkdir, (self.path,)


@pytest.fixture(scope="module")
def failed_starts(tmp_path_factory):
    """Every bad start-up, run at once (each is a Python start-up): name -> (exit code, stderr, files used)."""
    tmp = tmp_path_factory.mktemp("startup")
    garbage, pickled, ran = tmp / "garbage.pt", tmp / "pickled.pt", tmp / "code_ran"
    garbage.write_bytes(b"not a checkpoint\x00\x01" * 64)
    torch.save({"state_dict": {"w": torch.zeros(1)}, "hook": RunsCode(str(ran))}, pickled)
    cases = {
        "device": ["-p", "device:=tpu"],
        "compile_mode": ["-p", "compile:=fast"],
        "negative_sync_tolerance": ["-p", "sync_tolerance_s:=-0.5"],
        "params_file_type": ["--params-file", str(params_file(tmp / "type.yaml", {"lidar_extrinsic": {"z": "high"}}))],
        "missing_checkpoint": ["-p", f"checkpoint:={tmp / 'missing.pt'}"],
        "garbage_checkpoint": ["-p", f"checkpoint:={garbage}"],
        "pickled_code_checkpoint": ["-p", f"checkpoint:={pickled}"],
    }
    processes = {name: subprocess.Popen(node_command("-p", "device:=cpu", *args), env=ros_env(), text=True,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE) for name, args in cases.items()}
    outcomes = {}
    try:
        for name, process in processes.items():
            out, err = process.communicate(timeout=180)
            outcomes[name] = (process.returncode, out + err)
    finally:
        for process in processes.values():
            interrupt(process)  # one that did not end (it should have) stops here, not with the test session
    return outcomes, {"garbage": garbage, "pickled": pickled, "missing": tmp / "missing.pt", "ran": ran}


@pytest.mark.parametrize("case, cause", [
    ("device", "parameter device: must be auto, cpu, cuda or cuda:<index>, got 'tpu'"),
    ("compile_mode", "parameter compile: must be '' (off), default, reduce-overhead, max-autotune, got 'fast'"),
    ("negative_sync_tolerance", "parameter sync_tolerance_s: must be from 0.001 to 10.0, got -0.5"),
    ("params_file_type", "parameter lidar_extrinsic.z: must be of type double, got 'high' (string)"),
    ("missing_checkpoint", "checkpoint {missing}: no such file"),
    ("garbage_checkpoint", "checkpoint {garbage}: "),
    ("pickled_code_checkpoint", "checkpoint {pickled}: "),
])
def test_a_bad_start_exits_1_with_one_line_and_no_traceback(failed_starts, case, cause):
    outcomes, files = failed_starts
    code, output = outcomes[case]
    assert code == 1, output
    assert "Traceback" not in output, output
    errors = [line for line in output.splitlines() if line.startswith(PREFIX)]
    assert len(errors) == 1, output
    assert errors[0].startswith(PREFIX + cause.format(**files)), output
    others = [line for line in output.splitlines() if line and not line.startswith(("[", PREFIX))]
    assert not others, f"lines beside the error and ROS log lines: {others}"


def test_a_checkpoint_holding_code_is_refused_without_running_it(failed_starts):
    outcomes, files = failed_starts
    assert outcomes["pickled_code_checkpoint"][0] == 1
    assert not files["ran"].exists()


def parameter_value(message):
    """(type, value) of a rcl_interfaces/ParameterValue."""
    kind = message.type
    value = {ParameterType.PARAMETER_DOUBLE: message.double_value, ParameterType.PARAMETER_INTEGER:
             message.integer_value, ParameterType.PARAMETER_STRING: message.string_value}[kind]
    return kind, value


def test_a_good_start_coerces_integers_and_serves_live_changes(tmp_path):
    from rclpy.parameter_client import AsyncParameterClient

    log = open(tmp_path / "node.log", "w")
    node = subprocess.Popen(node_command("-p", "device:=cpu", "-p", "lidar_extrinsic.z:=2", "-p", "stale_timeout_s:=3",
                                         "-p", "sync_tolerence_s:=0.3"),
                            env=ros_env(), stdout=log, stderr=subprocess.STDOUT)
    side = ClientSide()
    try:
        client = AsyncParameterClient(side.node, f"/{NAMESPACE}/{NODE_NAME}")
        side.spin_until(lambda: client.services_are_ready() or node.poll() is not None, 120, "the node's services")
        assert node.poll() is None, (tmp_path / "node.log").read_text()
        got = side.result(client.get_parameters(["lidar_extrinsic.z", "stale_timeout_s", "device"])).values
        assert [parameter_value(v) for v in got] == [(ParameterType.PARAMETER_DOUBLE, 2.0),
                                                     (ParameterType.PARAMETER_DOUBLE, 3.0),
                                                     (ParameterType.PARAMETER_STRING, "cpu")]
        names = side.result(client.list_parameters()).result.names
        assert "sync_tolerance_s" in names and "sync_tolerence_s" not in names

        results = side.result(client.set_parameters([
            Parameter("latency_warn_s", value=1), Parameter("device", value="cuda"),
            Parameter("sync_tolerance_s", value=-1.0), Parameter("sync_tolerence_s", value=0.3)])).results
        assert [r.successful for r in results] == [True, False, False, False], [r.reason for r in results]
        assert "read-only" in results[1].reason
        assert "sync_tolerance_s" in results[2].reason and "range" in results[2].reason
        got = side.result(client.get_parameters(["latency_warn_s", "device", "sync_tolerance_s"])).values
        assert [parameter_value(v) for v in got] == [(ParameterType.PARAMETER_DOUBLE, 1.0),
                                                     (ParameterType.PARAMETER_STRING, "cpu"),
                                                     (ParameterType.PARAMETER_DOUBLE, 0.1)]
    finally:
        side.close()
        code = interrupt(node)
    output = (tmp_path / "node.log").read_text()
    assert code == 0, output
    assert "Traceback" not in output, output
    assert re.search(r"DiffusionDrive ready: cpu fp32; .*; warm-up 1 frame\(s\): \d+ ms", output), output
    assert "ignoring unknown parameter 'sync_tolerence_s' (did you mean 'sync_tolerance_s'?)" in output
