"""Child processes stopped the way an operator stops a ROS 2 node: SIGINT (Ctrl-C) first, a kill only when it hangs."""
from __future__ import annotations

import signal
import subprocess


def interrupt(process: subprocess.Popen, timeout: float = 20.0) -> int:
    """SIGINT, then the exit code; killed after `timeout` seconds (a killed process returns a negative code)."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait()
    return process.returncode
