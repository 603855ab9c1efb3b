"""Helpers for tests that run a real ROS 2 graph across processes, isolated per pytest-xdist worker."""
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from diffusiondrive_ros.ros.params import write_params_file

HERE = Path(__file__).resolve().parent


def domain_id() -> int:
    """A DDS domain per xdist worker so parallel tests never see each other's topics; DDROS_TEST_DOMAIN_BASE moves
    the whole range (e.g. for two test runs on one host).
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return int(os.environ.get("DDROS_TEST_DOMAIN_BASE", "40")) + int(worker[2:])


def ros_env() -> dict[str, str]:
    return {**os.environ, "ROS_DOMAIN_ID": str(domain_id()), "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
            "PYTHONUNBUFFERED": "1"}


def start_node(tmp_path: Path, params: dict, remaps: dict[str, str]) -> subprocess.Popen:
    args = [sys.executable, "-m", "diffusiondrive_ros.ros.node", "--ros-args",
            "--params-file", str(write_params_file(tmp_path / "params.yaml", params))]
    for source, target in remaps.items():
        args += ["-r", f"{source}:={target}"]
    log = open(tmp_path / "node.log", "w")
    return subprocess.Popen(args, env=ros_env(), stdout=log, stderr=subprocess.STDOUT)


def start_publisher(tmp_path: Path, *args: str) -> subprocess.Popen:
    log = open(tmp_path / "publisher.log", "w")
    return subprocess.Popen([sys.executable, str(HERE / "sensor_publisher.py"), *args], env=ros_env(),
                            stdout=log, stderr=subprocess.STDOUT)


class Listener:
    """An in-process rclpy node in its own context and domain, recording messages from a spinning thread."""

    def __init__(self, subscriptions: dict[str, tuple]):
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor

        self.context = Context()
        rclpy.init(context=self.context, domain_id=domain_id())
        self.node = rclpy.create_node("test_listener", context=self.context)
        self.messages: dict[str, list[tuple]] = {name: [] for name in subscriptions}
        self.topics = {name: topic for name, (_, topic, _) in subscriptions.items()}
        self.lock = threading.Lock()
        for name, (msg_type, topic, qos) in subscriptions.items():
            self.node.create_subscription(msg_type, topic, self._recorder(name), qos)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._running = True
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()

    def _recorder(self, name: str) -> Callable:
        def record(msg):
            with self.lock:
                self.messages[name].append((time.monotonic(), msg))
        return record

    def _spin(self) -> None:
        while self._running:
            self.executor.spin_once(timeout_sec=0.05)

    def publishers(self, name: str) -> int:
        """Publishers this listener has discovered on the topic of `name` (messages sent before are lost)."""
        return self.node.count_publishers(self.topics[name])

    def get(self, name: str) -> list:
        with self.lock:
            return [m for _, m in self.messages[name]]

    def wait_for(self, predicate: Callable[[], bool], timeout: float, what: str, *processes: subprocess.Popen) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            for process in processes:
                if process.poll() is not None:
                    raise AssertionError(f"{what}: process {process.args[:3]} exited with {process.returncode}")
            time.sleep(0.1)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}")

    def close(self) -> None:
        import rclpy

        self._running = False
        self.thread.join(5)
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


def live_t0(tmp_path: Path, ears: "Listener", *processes: subprocess.Popen) -> int:
    """Stamp of frame 0 of a publisher started with --live-stamps (it sends frame 0 once it has subscribers)."""
    log = tmp_path / "publisher.log"
    ears.wait_for(lambda: "t0_ns=" in log.read_text(), 60, "the publisher's first frame", *processes)
    return int(re.search(r"t0_ns=(\d+)", log.read_text()).group(1))
