"""Pipelining: the next frame is decoded and its features built while the model plans the one before, and only the
newest frame waits for the model."""
import threading

import numpy as np
import pytest
from ros.test_degradation import config, low_rate_frame

from diffusiondrive_ros.ros.pipeline import FramePipeline
from diffusiondrive_ros.ros.worker import LatestFrameWorker, SyncThenPlanWorker

TIMEOUT_S = 30.0


class Recorder:
    """Thread-safe event log of the worker's callbacks."""

    def __init__(self):
        self.events: list[tuple[str, object]] = []
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)

    def add(self, kind: str, item) -> None:
        with self.changed:
            self.events.append((kind, item))
            self.changed.notify_all()

    def wait_for(self, event: tuple[str, object]) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: event in self.events, TIMEOUT_S), (event, self.events)


def test_next_frames_are_prepared_while_the_planner_is_busy_and_only_the_newest_waits():
    log, release_first = Recorder(), threading.Event()

    def prepare(cloud):
        log.add("prepared", cloud)
        return f"frame{cloud}"

    def plan(frame):
        log.add("planning", frame)
        if frame == "frame1":
            assert release_first.wait(TIMEOUT_S)
        log.add("planned", frame)

    worker = SyncThenPlanWorker(prepare, plan, lambda error: log.add("error", error),
                                lambda item: log.add("drop", item))
    try:
        worker.submit(1)
        log.wait_for(("planning", "frame1"))
        worker.submit(2)
        log.wait_for(("prepared", 2))
        worker.submit(3)
        log.wait_for(("drop", "frame2"))  # frame 3 prepared while frame 1 is still planned: it replaces frame 2
        assert ("planned", "frame1") not in log.events
        release_first.set()
        log.wait_for(("planned", "frame3"))
    finally:
        worker.stop()
    planned = [item for kind, item in log.events if kind == "planned"]
    assert planned == ["frame1", "frame3"]
    assert [item for kind, item in log.events if kind == "drop"] == ["frame2"]
    assert not [event for event in log.events if event[0] == "error"]


def test_skipped_frames_are_not_planned_and_errors_do_not_stop_the_worker():
    log = Recorder()

    def prepare(cloud):
        if cloud == "bad":
            raise RuntimeError("broken decoder")
        return None if cloud == "skipped" else cloud

    worker = SyncThenPlanWorker(prepare, lambda frame: log.add("planned", frame), lambda error: log.add("error", error),
                                lambda item: log.add("drop", item))
    try:
        for cloud in ("skipped", "bad", "good"):
            worker.submit(cloud)
            if cloud == "bad":
                with log.changed:
                    assert log.changed.wait_for(lambda: any(kind == "error" for kind, _ in log.events), TIMEOUT_S)
        log.wait_for(("planned", "good"))
    finally:
        worker.stop()
    assert [item for kind, item in log.events if kind == "planned"] == ["good"]
    errors = [item for kind, item in log.events if kind == "error"]
    assert len(errors) == 1 and str(errors[0]) == "broken decoder"


def test_latest_frame_worker_hands_back_the_item_it_replaced():
    started, release = threading.Event(), threading.Event()
    handled = []

    def handle(item):
        started.set()
        assert release.wait(TIMEOUT_S)
        handled.append(item)

    worker = LatestFrameWorker(handle, lambda error: None)
    try:
        assert worker.submit("a") is None
        assert started.wait(TIMEOUT_S)  # "a" is being handled, nothing waits
        assert worker.submit("b") is None
        assert worker.submit("c") == "b"
    finally:
        release.set()
        worker.stop()
    assert handled[0] == "a" and "b" not in handled


@pytest.fixture(scope="module")
def planner():
    from diffusiondrive_ros.planner import Planner

    return Planner.from_checkpoint(None, device="cpu")


def test_frames_prepared_ahead_plan_exactly_as_frames_planned_one_by_one(planner):
    """Frame 4 is decoded and featurised before frame 3 is planned (as in the node), in buffers of its own: the
    Paths and scores equal planning each frame alone, and the buffers of planned and dropped frames are reused."""
    sequential = FramePipeline(planner, config())
    expected = [sequential.plan(low_rate_frame(sequential, index)) for index in (3, 4)]

    pipelined = FramePipeline(planner, config())
    first, second = (pipelined.prepare(low_rate_frame(pipelined, index)) for index in (3, 4))
    assert not np.shares_memory(first.model_inputs.camera_feature, second.model_inputs.camera_feature)
    assert not np.shares_memory(first.model_inputs.lidar_feature, second.model_inputs.lidar_feature)
    planned = [pipelined.infer(first), pipelined.infer(second)]
    for got, want in zip(planned, expected):
        np.testing.assert_array_equal(got.result.modes, want.result.modes)
        np.testing.assert_array_equal(got.result.scores, want.result.scores)
        assert [p.pose.position.x for p in got.path.poses] == [p.pose.position.x for p in want.path.poses]
    assert pipelined.stats.planned == 2 and set(pipelined.stats.latency_percentiles()) == {"decode", "features",
                                                                                             "model"}
    again = pipelined.prepare(low_rate_frame(pipelined, 5))  # takes a released buffer, allocates none
    assert any(np.shares_memory(again.model_inputs.camera_feature, frame.model_inputs.camera_feature)
               for frame in (first, second))
    again.release()  # a frame dropped before planning hands its buffers back too
    assert np.shares_memory(pipelined.prepare(low_rate_frame(pipelined, 6)).model_inputs.camera_feature,
                            again.model_inputs.camera_feature)
