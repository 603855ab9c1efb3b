"""A node under test spun in this process (its own context, the worker's domain), so a test can talk to it over
DDS from another context and also look at its state; plus a second context for the test's own nodes.
"""
import threading
import time
from collections.abc import Callable

from ros_graph import domain_id


class SpinningNode:
    """`make(context)` built in a fresh context initialised with `args` (e.g. --ros-args -p ...), spun on a thread."""

    def __init__(self, make: Callable, args: list[str] | None = None):
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor

        self.context = Context()
        rclpy.init(args=args, context=self.context, domain_id=domain_id())
        try:
            self.node = make(self.context)
        except BaseException:  # a node that fails to build still leaves a context to shut down
            rclpy.try_shutdown(context=self.context)
            raise
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._running = True
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while self._running and self.context.ok():
            self.executor.spin_once(timeout_sec=0.05)

    def close(self) -> None:
        import rclpy

        self._running = False
        self._thread.join(5)
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


class ClientSide:
    """The test's own rclpy node in a second context (another DDS participant), spun on demand."""

    def __init__(self, name: str = "test_client"):
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor

        self.context = Context()
        rclpy.init(context=self.context, domain_id=domain_id())
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)

    def result(self, future, timeout: float = 30.0):
        """Spin until `future` is done; its result, or AssertionError after `timeout` seconds."""
        self.executor.spin_until_future_complete(future, timeout_sec=timeout)
        assert future.done(), f"no answer within {timeout} s"
        return future.result()

    def spin_until(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            self.executor.spin_once(timeout_sec=0.05)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}")

    def close(self) -> None:
        import rclpy

        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
