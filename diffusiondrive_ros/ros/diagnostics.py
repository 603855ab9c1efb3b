"""Input rates/ages and planner health as diagnostic_msgs/DiagnosticArray (diagnostic_updater is not on PyPI)."""
from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from .conversions import ns_to_stamp
from .frame_sync import CAMERA_NAMES, SyncConfig
from .pipeline import PipelineStats

OK, WARN, ERROR = DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR
_NS = 1e9


@dataclass(frozen=True)
class InputSpec:
    """One input: `required` ones are ERROR when missing or stale, others `missing_level` / WARN."""

    name: str
    required: bool
    missing_note: str = ""
    missing_level: int = OK
    stale_timeout_s: float | None = None
    """Overrides the common stale timeout (odometry: its sync tolerance, as low-rate odometry still plans)."""
    latched: bool = False
    """A latched input (the command) holds until replaced: judged by its matched publishers, never by its age."""


def planner_inputs(sync: SyncConfig) -> list[InputSpec]:
    """The node's inputs: cameras, cloud and odometry required; the IMU and the command fall back (WARN) when
    expected and missing (docs/degradation.md)."""
    imu_expected = sync.acceleration_source == "imu"
    return [InputSpec(n, True) for n in CAMERA_NAMES] + [
        InputSpec("pointcloud", True), InputSpec("odometry", True, stale_timeout_s=sync.odometry_tolerance_s),
        InputSpec("imu", False, "acceleration from odometry" + (", then zero" if imu_expected else ""),
                  WARN if imu_expected else OK),
        InputSpec("command", False, f"planning with default_command {sync.default_command}", WARN, latched=True),
    ]


class InputMonitor:
    """Arrival times (node clock) and header stamps of each input, for rates and ages."""

    def __init__(self, specs: Iterable[InputSpec], window_s: float = 5.0):
        self.specs = list(specs)
        self.window_ns = int(window_s * _NS)
        self._arrivals: dict[str, deque[int]] = {s.name: deque(maxlen=1000) for s in self.specs}
        self._last_stamp: dict[str, int] = {}
        self._rejected: dict[str, str] = {}
        self._lock = threading.Lock()

    def reset(self) -> None:
        """Forget arrivals and stamps (after a backward clock jump: they belong to the old timeline)."""
        with self._lock:
            for arrivals in self._arrivals.values():
                arrivals.clear()
            self._last_stamp.clear()
            self._rejected.clear()

    def record(self, name: str, stamp_ns: int, now_ns: int) -> None:
        with self._lock:
            self._arrivals[name].append(now_ns)
            self._last_stamp[name] = stamp_ns
            self._rejected.pop(name, None)

    def reject(self, name: str, note: str) -> None:
        """The newest message of `name` was invalid: reported as WARN until a valid one arrives."""
        with self._lock:
            self._rejected[name] = note

    def rejected(self, name: str) -> str | None:
        with self._lock:
            return self._rejected.get(name)

    def rate_and_age(self, name: str, now_ns: int) -> tuple[float, float | None]:
        """(messages per second over the window, now - newest header stamp in s, None if never received)."""
        with self._lock:
            recent = [t for t in self._arrivals[name] if now_ns - t <= self.window_ns]
            stamp = self._last_stamp.get(name)
        rate = ((len(recent) - 1) / ((recent[-1] - recent[0]) / _NS)
                if len(recent) > 1 and recent[-1] > recent[0] else 0.0)
        return rate, None if stamp is None else (now_ns - stamp) / _NS


def _status(name: str, level: int, message: str, values: dict[str, object], hardware_id: str) -> DiagnosticStatus:
    return DiagnosticStatus(level=level, name=name, message=message, hardware_id=hardware_id,
                            values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])


def input_statuses(monitor: InputMonitor, now_ns: int, stale_timeout_s: float, prefix: str,
                   hardware_id: str, publishers: dict[str, int] | None = None) -> list[DiagnosticStatus]:
    """An input is stale when its newest stamp is older than the timeout, or than two of its own periods for an
    input slower than that (a 2 Hz LiDAR is not stale 0.6 s after its last sweep). A latched input is never
    stale; with `publishers` (input -> matched publisher count) it WARNs once its last publisher is gone."""
    statuses = []
    for spec in monitor.specs:
        rate, age = monitor.rate_and_age(spec.name, now_ns)
        values = {"rate_hz": f"{rate:.2f}", "age_s": "never" if age is None else f"{age:.3f}"}
        rejected = monitor.rejected(spec.name)
        timeout = max(stale_timeout_s, spec.stale_timeout_s or 0.0, 2.0 / rate if rate > 0 else 0.0)
        matched = (publishers or {}).get(spec.name)
        if matched is not None:
            values["publishers"] = matched
        if rejected:
            level, message = WARN, rejected
        elif age is None:
            level = ERROR if spec.required else spec.missing_level
            message = "no message received" + (f" ({spec.missing_note})" if spec.missing_note else "")
            if matched == 0:
                message += "; no publisher matched"
        elif spec.latched:
            level, message = (WARN, "publisher gone: keeping the last value") if matched == 0 else (OK, "ok")
        elif age > timeout:
            level = ERROR if spec.required else WARN
            message = f"stale: last message {age:.2f} s old (timeout {timeout:.2f} s)"
        else:
            level, message = OK, "ok"
        statuses.append(_status(f"{prefix}: input {spec.name}", level, message, values, hardware_id))
    return statuses


class PlanningHealth:
    """Planner status for one diagnostics period, judged from the change of the counters since the last period
    and from the planning rate over the last `rate_window_s`.

    Frames dropped while the planner is busy are counted; they make the status WARN only when the achieved
    planning rate falls below `min_planning_rate_hz` (a planner slower than the LiDAR is normal on a CPU).
    """

    def __init__(self, latency_warn_s: float, min_planning_rate_hz: float = 0.0, rate_window_s: float = 5.0):
        self.latency_warn_s = latency_warn_s
        self.min_planning_rate_hz = min_planning_rate_hz
        self.rate_window_ns = int(rate_window_s * _NS)
        self._previous = (0, 0)
        self._history: deque[tuple[int, int]] = deque()

    def reset(self) -> None:
        """Forget the planning-rate history (after a backward clock jump)."""
        self._history.clear()

    def _planning_rate(self, now_ns: int, planned: int) -> float | None:
        """Frames planned per second over the window, None until the window has some length."""
        self._history.append((now_ns, planned))
        while now_ns - self._history[0][0] > self.rate_window_ns:
            self._history.popleft()
        first_ns, first_planned = self._history[0]
        return ((planned - first_planned) / ((now_ns - first_ns) / _NS)
                if now_ns - first_ns >= self.rate_window_ns // 2 else None)

    def status(self, stats: PipelineStats, clouds_received: int, describe: str, prefix: str, hardware_id: str,
               now_ns: int, seeded: bool = False) -> DiagnosticStatus:
        with stats.lock:
            planned, failed, dropped, skipped = (stats.planned, stats.failed, stats.dropped_busy,
                                                 sum(stats.skipped.values()))
            reasons, failures, fallback_counts = dict(stats.skipped), dict(stats.failures), dict(stats.fallbacks)
            last_skip, last_error, last_outcome = stats.last_skip, stats.last_error, stats.last_outcome
            fallbacks, acceleration = dict(stats.last_fallbacks), stats.last_acceleration_source
            forced_aspects = dict(stats.forced_aspects)
        new_planned, new_skipped = planned - self._previous[0], skipped - self._previous[1]
        self._previous = (planned, skipped)
        rate = self._planning_rate(now_ns, planned)
        latency = stats.latency_percentiles()
        model_time = latency.get("model", {})
        values: dict[str, object] = {
            "planner": describe,
            "frames_planned": planned,
            "frames_skipped": skipped,
            "frames_failed": failed,
            "frames_dropped_busy": dropped,
            "clouds_received": clouds_received,
            "planning_rate_hz": "n/a" if rate is None else f"{rate:.2f}",
            "acceleration_source": acceleration or "n/a",
            **{f"latency_{stage}_{k}_s": f"{v:.4f}" for stage, times in latency.items() for k, v in times.items()
               if k != "p99"},
            **{f"skipped_{k}": v for k, v in sorted(reasons.items())},
            **{f"failed_{k}": v for k, v in sorted(failures.items())},
            **{f"frames_with_fallback_{k}": v for k, v in sorted(fallback_counts.items())},
            **{f"fallback_{k}": v for k, v in sorted(fallbacks.items())},
            **{f"aspect_ratio_forced_{k}": v for k, v in sorted(forced_aspects.items())},
            "last_skip": last_skip or "none",
        }
        if last_error:
            values["last_error"] = last_error
        if last_outcome == "error":
            level, message = ERROR, f"planner failed: {last_error}"
        elif last_outcome == "skipped" and not new_planned:
            level, message = ERROR, f"not planning: {last_skip}"
        elif clouds_received == 0:
            level, message = WARN, "waiting for the first point cloud"
        elif new_skipped:
            level, message = WARN, f"{new_skipped} frames skipped in the last period: {last_skip}"
        elif fallbacks:
            level, message = WARN, "planning with fallbacks: " + "; ".join(f"{k}: {v}" for k, v in fallbacks.items())
        elif rate is not None and rate < self.min_planning_rate_hz:
            level, message = WARN, (f"slow: planning {rate:.2f} Hz < {self.min_planning_rate_hz} Hz "
                                    f"({dropped} frames dropped while busy in all)")
        elif model_time and model_time["p90"] > self.latency_warn_s:
            level, message = WARN, f"slow: p90 model time {model_time['p90']:.3f} s > {self.latency_warn_s} s"
        elif seeded:
            level, message = WARN, (f"planning with seeded random weights, not a trained policy ({new_planned} frames "
                                    "in the last period); set the checkpoint parameter")
        else:
            level, message = OK, f"planning ({new_planned} frames in the last period)"
        return _status(f"{prefix}: planning", level, message, values, hardware_id)


def diagnostic_array(stamp_ns: int, statuses: list[DiagnosticStatus]) -> DiagnosticArray:
    msg = DiagnosticArray(status=statuses)
    msg.header.stamp = ns_to_stamp(max(stamp_ns, 0))
    return msg
