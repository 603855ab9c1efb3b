"""`eval`: per-frame metrics of planner and baselines on the node's frames, JSON/markdown reports, worst-frame PNGs."""
from __future__ import annotations

import json
import math
import shutil

import cv2
import numpy as np
import pytest

from diffusiondrive_ros.cli import main
from diffusiondrive_ros.model.checkpoint import save_checkpoint
from diffusiondrive_ros.planner import SEEDED, Planner
from diffusiondrive_ros.ros.pipeline import FramePipeline, PipelineConfig
from diffusiondrive_ros.tools.bag_io import open_bag
from diffusiondrive_ros.tools.dataset_builder import check_bag, odometry_track
from diffusiondrive_ros.tools.evaluate import (
    BASELINES,
    RATIO_BASELINES,
    FutureSweeps,
    baseline_trajectories,
    evaluate_bags,
    scenario_metrics,
    scenario_tags,
)
from diffusiondrive_ros.tools.replay import BagFrames, ReplayTopics, camera_transport
from diffusiondrive_ros.tools.synthetic.bag import make_drive
from diffusiondrive_ros.tools.synthetic.config import DriveConfig
from diffusiondrive_ros.tools.synthetic.geometry import pose_matrix
from diffusiondrive_ros.tools.synthetic.lidar import LIDAR_MOUNT
from diffusiondrive_ros.tools.synthetic.scenario import SUMMARY_FORMAT
from diffusiondrive_ros.tools.synthetic.scene import SyntheticScene
from diffusiondrive_ros.training.baselines import constant_velocity
from diffusiondrive_ros.training.metrics import (
    CollisionConfig,
    MetricsConfig,
    ObstacleSweep,
    collision,
    evaluate_frame,
    obstacle_points,
    to_plan_frame,
)

# 4.3 s: the first 0.3 s of sweeps (stamps 0, 0.1, 0.2 s) have the 4 s of odometry future an evaluation needs;
# every third sweep is evaluated, so each bag gives one frame (stamp 0), which keeps the planning time small.
DRIVE = DriveConfig(duration_s=4.3, lidar_azimuth_steps=500, lidar_beams=32)
METRIC_KEYS = {"ade", "fde", "min_ade", "min_fde", "miss_rate", "collision_rate", "near_obstacle_rate", "comfort_rate",
               "progress", "num_frames"}
RATIO_KEYS = {f"{m}_vs_{b}" for m in ("ade", "fde") for b in RATIO_BASELINES}
SCENARIO_KEYS = {"turn_agreement", "stop_rate", "lead_stop_rate", "branch_coverage", "num_turn_frames",
                 "num_stop_frames", "num_lead_stop_frames", "num_intersection_frames"}


# A random drive with a lead vehicle from the start (2.2 s ahead at 10.9 m/s) and oncoming traffic, no parked cars.
LEAD_DRIVE = DriveConfig(seed=11, scenario="random", duration_s=6.0, image_width=320, image_height=180,
                         lidar_azimuth_steps=500, lidar_beams=32)


def scenario(intersections=(), stops=()) -> dict:
    """A scenario.json document with only what eval reads."""
    return {"format": SUMMARY_FORMAT, "start_time_ns": DRIVE.start_time_ns, "intersections": list(intersections),
            "stops": list(stops)}


# The box of a four-way intersection 1 s ahead of the first sweeps, a left turn from 1.5 s to 6 s; a stop at 3 s.
CROSSING = {"kind": "four-way", "exits": ["left", "straight", "right"], "decision": "left", "approach_time_s": 1.0,
            "start_time_s": 1.5, "end_time_s": 6.0}
STOP = {"reason": "vehicle", "start_time_s": 3.0, "end_time_s": None}


@pytest.fixture(scope="module")
def drives(tmp_path_factory):
    """The short drive, and a copy of it under another name with a scenario.json: two bags."""
    root = tmp_path_factory.mktemp("eval")
    make_drive(root / "drive_a", DRIVE)
    shutil.copytree(root / "drive_a", root / "drive_b")
    (root / "drive_b" / "scenario.json").write_text(json.dumps(scenario([CROSSING], [STOP])))
    return [root / "drive_a", root / "drive_b"]


@pytest.fixture(scope="module")
def planner():
    """Seeded weights of the compact variant: an untrained planner that is quick on a CPU."""
    return Planner.from_checkpoint(SEEDED, device="cpu", variant="compact")


@pytest.fixture(scope="module")
def evaluated(drives, planner, tmp_path_factory):
    """Every third sweep of both bags, with the two worst frames rendered."""
    pictures = tmp_path_factory.mktemp("worst")
    return evaluate_bags(drives, planner, every=3, render_worst=2, render_dir=pictures), pictures


def test_json_names_every_metric_per_bag_and_overall(evaluated, tmp_path):
    report, _ = evaluated
    document = json.loads(report.write_json(tmp_path / "eval.json").read_text())
    assert document["planner"] == report.planner and document["every"] == 3
    entries = [*document["bags"], document["overall"]]
    for entry in entries:
        assert METRIC_KEYS | RATIO_KEYS | {"baselines", "clouds", "evaluated", "skipped"} <= set(entry)
        assert set(entry["baselines"]) == set(BASELINES)
        for summary in entry["baselines"].values():
            assert METRIC_KEYS <= set(summary)
        # constant velocity is exact on this cruise: a ratio to 0 is undefined (null)
        assert entry["baselines"]["constant_velocity"]["ade"] == 0.0 and entry["ade_vs_constant_velocity"] is None
    for bag in document["bags"]:
        # 43 sweeps, every third one selected (15); those from 0.3 s on have no full future and are not planned
        assert (bag["clouds"], bag["evaluated"], bag["skipped"]) == (43, 1, {"no_future": 14})
        assert [frame["stamp_ns"] for frame in bag["frames"]] == [DRIVE.start_time_ns]
    overall = document["overall"]
    counts = (overall["bags"], overall["clouds"], overall["evaluated"], overall["skipped"])
    assert counts == (2, 86, 2, {"no_future": 28})
    frames = [frame for bag in document["bags"] for frame in bag["frames"]]
    assert overall["ade"] == pytest.approx(np.mean([frame["ade"] for frame in frames]))
    assert overall["baselines"]["constant_turn_rate"]["fde"] == pytest.approx(
        np.mean([frame["baselines"]["constant_turn_rate"]["fde"] for frame in frames]))


def test_constant_velocity_is_exact_on_the_straight_cruise(evaluated):
    report, _ = evaluated
    first = report.bags[0].frames[0]
    # 10 m/s straight ahead until 4 s: the recorded future is 5 m per pose, which constant velocity predicts exactly.
    np.testing.assert_allclose(first.ground_truth, [[5.0 * i, 0.0, 0.0] for i in range(1, 9)], atol=0.02)
    trajectories = baseline_trajectories((10.0, 0.0), 0.0, first.ground_truth)
    np.testing.assert_allclose(trajectories["constant_velocity"], [[5.0 * i, 0.0, 0.0] for i in range(1, 9)])
    assert trajectories["recorded"] is first.ground_truth
    for name in BASELINES:
        assert first.baselines[name].ade < 0.02 and first.baselines[name].fde < 0.05
        assert first.baselines[name].min_ade == first.baselines[name].ade  # one mode


def _scene_points(scene: SyntheticScene, t: float) -> np.ndarray:
    """The sweep the bag holds at t (float32), in the ego frame at t, without the bag or the pipeline."""
    cloud = scene.lidar_sweep(t)[:, :3].astype(np.float32).astype(np.float64)
    return cloud @ pose_matrix(*LIDAR_MOUNT, 0.0)[:3, :3].T + np.array(LIDAR_MOUNT)


def _scene_sweeps(scene: SyntheticScene, t: float, horizon_s: float = 4.0) -> list[ObstacleSweep]:
    """The 10 Hz sweeps from t through the horizon in the ego frame at t, placed by the scene's analytic ego poses."""
    sweeps = []
    for k in range(round(horizon_s * 10) + 1):
        pose = np.zeros(3) if k == 0 else scene.ground_truth_future(t, 1, k / 10)[0]
        sweeps.append(ObstacleSweep(k / 10, to_plan_frame(obstacle_points(_scene_points(scene, t + k / 10)), pose)))
    return sweeps


def test_frame_metrics_equal_training_metrics_on_the_same_frame(evaluated):
    report, _ = evaluated
    frame = report.bags[1].frames[0]
    t = (frame.stamp_ns - DRIVE.start_time_ns) / 1e9
    scene = SyntheticScene(DRIVE)
    state = scene.ego_state(t)
    future = scene.ground_truth_future(t)
    ego = {"sweeps": _scene_sweeps(scene, t), "velocity": state.velocity, "acceleration": state.acceleration,
           "yaw_rate": state.yaw_rate}
    straight_on = constant_velocity(state.velocity)[None]
    expected = {"planner": evaluate_frame(frame.modes, frame.scores, future, **ego),
                "constant_velocity": evaluate_frame(straight_on, np.zeros(1), future, **ego)}
    for name, got in (("planner", frame.metrics), ("constant_velocity", frame.baselines["constant_velocity"])):
        want = expected[name]
        for field in ("ade", "fde", "min_ade", "min_fde", "clearance_m", "centre_line_clearance_m"):
            assert getattr(got, field) == pytest.approx(getattr(want, field), abs=0.02), (name, field)
        assert got.progress.ratio == pytest.approx(want.progress.ratio, abs=0.01)
        assert (got.best_index, got.collision, got.near_obstacle, got.turn_direction, got.stops) == (
            want.best_index, want.collision, want.near_obstacle, want.turn_direction, want.stops)
        assert got.comfort.violations == want.comfort.violations


def test_markdown_report(evaluated, tmp_path):
    report, _ = evaluated
    text = report.write_markdown(tmp_path / "eval.md").read_text()
    for heading in ("# Open-loop evaluation", "## Planner", "## Baselines", "## Skipped sweeps"):
        assert heading in text
    assert "`drive_a`" in text and "`drive_b`" in text and "**overall**" in text
    assert "| `drive_a` | `no_future` | 14 |" in text
    table = report.table().splitlines()
    assert [line.split()[0] for line in table[:4]] == ["bag", "drive_a", "drive_b", "overall"]


def test_render_worst_writes_the_worst_frames_by_ade(evaluated):
    report, folder = evaluated
    assert sorted(folder.iterdir()) == sorted(report.pictures) and len(report.pictures) == 2
    worst = sorted(report.frames, key=lambda f: -f.metrics.ade)[:2]
    for rank, (path, frame) in enumerate(zip(report.pictures, worst), start=1):
        assert path.name.startswith(f"worst_{rank:02d}_") and path.name.endswith(f"_{frame.stamp_ns}.png")
        image = cv2.imread(str(path))
        assert image is not None and image.shape[0] == 800


def test_cli_evaluates_a_checkpoint(drives, planner, tmp_path, capsys):
    checkpoint, out_json, out_md = tmp_path / "compact.pt", tmp_path / "eval.json", tmp_path / "eval.md"
    save_checkpoint(checkpoint, planner.model, planner.model.config)
    code = main(["eval", str(drives[0]), "--checkpoint", str(checkpoint), "--device", "cpu", "--every", "3",
                 "--quiet", "--json", str(out_json), "--markdown", str(out_md)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "planner: cpu fp32;" in printed and "model: compact" in printed and "overall" in printed
    document = json.loads(out_json.read_text())
    assert document["overall"]["evaluated"] == 1 and METRIC_KEYS <= set(document["overall"])
    assert out_md.read_text().startswith("# Open-loop evaluation")


@pytest.mark.parametrize("kind", ["missing", "not_a_bag"])
def test_cli_refuses_a_bad_bag_in_one_line(kind, tmp_path, capsys):
    path = tmp_path / kind
    if kind == "not_a_bag":
        path.mkdir()
    assert main(["eval", str(path), "--model-seeded"]) == 1
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 1 and str(path) in errors[0] and errors[0].startswith("diffusiondrive-ros eval: error:")


def test_cli_refuses_render_worst_without_a_folder(drives, capsys):
    assert main(["eval", str(drives[0]), "--model-seeded", "--render-worst", "2"]) == 1
    assert capsys.readouterr().err.strip() == "diffusiondrive-ros eval: error: --render-worst needs --render-dir"


def test_evaluate_bags_checks_its_arguments(drives, planner):
    with pytest.raises(ValueError, match="every"):
        evaluate_bags(drives, planner, every=0)
    with pytest.raises(ValueError, match="render_dir"):
        evaluate_bags(drives, planner, render_worst=1)


def test_scenario_metrics_from_the_scenario_json(evaluated, tmp_path):
    report, _ = evaluated
    document = json.loads(report.write_json(tmp_path / "eval.json").read_text())
    plain, tagged = document["bags"]
    assert "scenario" not in plain and all("scenario" not in frame for frame in plain["frames"])
    # The evaluated sweep (0 s) is 1 s before the crossing and has poses at or after the stop (3 s); the recorded
    # drive goes straight on, so it is no turn frame.
    summary = tagged["scenario"]
    assert (summary["num_turn_frames"], summary["num_stop_frames"], summary["num_intersection_frames"]) == (0, 1, 1)
    assert summary["turn_agreement"] is None
    tags = [frame["scenario"] for frame in tagged["frames"]]
    assert summary["stop_rate"] == pytest.approx(np.mean([tag["stops_short"] for tag in tags]))
    assert summary["branch_coverage"] == pytest.approx(np.mean([len(tag["covered_exits"]) / 3 for tag in tags]))
    assert document["overall"]["scenario"] == summary
    assert "## Scenario" in report.markdown()


def _arc(sign: int, radius: float = 10.0, speed: float = 5.0) -> np.ndarray:
    """Poses (8, 3) of a constant-speed quarter-ish turn, left (+1) or right (-1), at 0.5 s per pose."""
    angle = speed * 0.5 * np.arange(1, 9) / radius
    return np.stack([radius * np.sin(angle), sign * radius * (1 - np.cos(angle)), sign * angle], axis=1)


def _straight(distances) -> np.ndarray:
    """Poses (8, 3) straight ahead at the given distances."""
    return np.stack([np.asarray(distances, dtype=float), np.zeros(8), np.zeros(8)], axis=1)


def test_scenario_tags_turns_and_branches():
    modes = np.stack([_arc(+1), _straight(np.arange(1, 9) * 2.5), np.zeros((8, 3))])
    metrics = evaluate_frame(modes, np.array([1.0, 0.0, 0.0]), _arc(+1))
    tags = scenario_tags(scenario([CROSSING]), 0.2, modes, metrics, _arc(+1))
    # A left turn ahead that the recorded future shows and the best (left) mode follows; standing takes no branch.
    assert (tags.turn, tags.turn_agrees, tags.stop, tags.stops_short) == (1, True, False, None)
    assert tags.exits == ("left", "straight", "right") and tags.covered_exits == ("left", "straight")
    assert scenario_metrics([tags])["branch_coverage"] == pytest.approx(2 / 3)
    right = evaluate_frame(modes[::-1] * [1, -1, -1], np.array([0.0, 0.0, 1.0]), _arc(+1))
    assert scenario_tags(scenario([CROSSING]), 0.2, modes[::-1] * [1, -1, -1], right, _arc(+1)).turn_agrees is False
    # Past the crossing's start it is no intersection frame; a recorded future going straight is no turn frame.
    assert scenario_tags(scenario([CROSSING]), 1.6, modes, metrics, _arc(+1)).exits == ()
    straight = evaluate_frame(modes, np.array([1.0, 0.0, 0.0]), _straight(np.arange(1, 9) * 5.0))
    assert scenario_tags(scenario([CROSSING]), 0.2, modes, straight, _straight(np.arange(1, 9) * 5.0)).turn == 0


def test_scenario_tags_stops_short_of_the_recorded_stop_point():
    # The recorded ego stands from 2 s after the sweep (pose 4) at 10 m: a best mode may reach 11 m there.
    recorded = _straight([4, 7, 9, 10, 10, 10, 10, 10])
    stop = {"reason": "pedestrian", "start_time_s": 12.0, "end_time_s": 13.6}
    for best, short in (([2, 4, 6, 8, 9, 10, 10.5, 10.5], True), ([3, 6, 9, 12, 12, 12, 12, 12], False),
                        ([2, 4, 6, 8, 10, 10.5, 10.9, 14], True)):  # pose 8 (14 s) is after the stop ends
        modes = _straight(best)[None]
        metrics = evaluate_frame(modes, np.zeros(1), recorded)
        tags = scenario_tags(scenario(stops=[stop]), 10.0, modes, metrics, recorded)
        assert (tags.stop, tags.stops_short) == (True, short), best
    later = {"reason": "vehicle", "start_time_s": 14.1, "end_time_s": None}
    assert scenario_tags(scenario(stops=[later]), 10.0, modes, metrics, recorded).stop is False
    # Behind a lead vehicle the same frame counts apart: not a stop frame, a lead-stop frame.
    lead = scenario_tags(scenario(stops=[stop | {"reason": "lead_vehicle"}]), 10.0, modes, metrics, recorded)
    assert (lead.stop, lead.stops_short, lead.lead_stop, lead.lead_stops_short) == (False, None, True, True)
    both = [scenario_tags(scenario(stops=[stop | {"reason": reason}]), 10.0, modes, metrics, recorded)
            for reason in ("vehicle", "lead_vehicle", "lead_vehicle")]
    summary = scenario_metrics(both)
    assert (summary["num_stop_frames"], summary["stop_rate"], summary["num_lead_stop_frames"]) == (1, 1.0, 2)


def test_random_drive_scenario_is_read(planner, tmp_path):
    bag = tmp_path / "random"
    make_drive(bag, DriveConfig(seed=1, scenario="random", duration_s=4.1, lidar_azimuth_steps=500, lidar_beams=32))
    summary = evaluate_bags([bag], planner, every=3).overall()
    assert summary["evaluated"] == 1 and set(summary["scenario"]) == SCENARIO_KEYS
    # this drive changes speed, so the kinematic baselines miss and the ratios are defined
    assert summary["baselines"]["recorded"]["ade"] == 0.0
    for name in RATIO_BASELINES:
        assert summary[f"ade_vs_{name}"] == pytest.approx(summary["ade"] / summary["baselines"][name]["ade"])


# --- near-obstacle and collision checks against the sweeps of each pose's time --------------------------------------


@pytest.fixture(scope="module")
def lead_drive(tmp_path_factory):
    """The lead-vehicle drive as a bag, and its scene."""
    bag = tmp_path_factory.mktemp("lead") / "lead"
    make_drive(bag, LEAD_DRIVE)
    assert json.loads((bag / "scenario.json").read_text())["lead_vehicle"]["from_start"]
    return bag, SyntheticScene(LEAD_DRIVE)


@pytest.fixture(scope="module")
def first_frame_sweeps(lead_drive):
    """FutureSweeps of the drive's first frame (stamp 0), read from the bag as eval reads it, with the frame."""
    bag, _ = lead_drive
    topics = ReplayTopics()
    pipeline = FramePipeline(None, PipelineConfig(camera_transport=camera_transport(check_bag(bag, topics), topics)))
    first = next(iter(BagFrames(pipeline, topics).read(bag)))
    track = odometry_track(bag, topics.odometry)
    sweeps = FutureSweeps(open_bag(bag).messages([topics.pointcloud]), track, 4.0).around(pipeline, first.inputs)
    return first.inputs, sweeps


def test_future_sweeps_are_placed_where_the_scene_puts_them(lead_drive, first_frame_sweeps):
    _, scene = lead_drive
    inputs, sweeps = first_frame_sweeps
    assert inputs.stamp_ns == LEAD_DRIVE.start_time_ns
    # every 10 Hz sweep from the frame's stamp to the horizon (4 s plus the 0.05 s tolerance)
    np.testing.assert_allclose([sweep.offset_s for sweep in sweeps], np.arange(41) / 10, atol=1e-9)
    # the same points as the scene's sweeps moved by its analytic ego poses (odometry is sampled at 50 Hz)
    for got, want in zip(sweeps, _scene_sweeps(scene, 0.0)):
        assert got.xy.shape == want.xy.shape and got.xy.shape[0] > 1000
        np.testing.assert_allclose(got.xy, want.xy, atol=0.05)


def test_a_plan_straight_into_a_standing_obstacle_is_flagged(lead_drive, first_frame_sweeps):
    _, scene = lead_drive
    _, sweeps = first_frame_sweeps
    now, later = sweeps[0].xy, sweeps[30].xy  # t = 0 and t = 3 s, both in the frame at t = 0
    # A standing point: where the ego saw something at 0 s and, 30 m further on, sees something at 3 s again (the lead
    # car and oncoming cars have moved tens of metres by then).
    distance = np.concatenate([np.linalg.norm(block[:, None, :] - now[None, :, :], axis=2).min(axis=1)
                               for block in np.array_split(later, 10)])
    standing = later[(distance < 0.2) & (np.hypot(*later.T) > 15.0)]
    assert len(standing) > 10
    target = standing[0]
    heading = math.atan2(target[1], target[0])
    plan = np.array([[*(target * (0.5 * i / 3.0)), heading] for i in range(1, 9)])  # reaches it at 3 s, drives on
    assert collision(plan, sweeps)
    recorded = scene.ground_truth_future(0.0)
    assert not collision(recorded, sweeps)


def test_the_recorded_drive_behind_a_lead_car_is_clear_but_held_sweeps_flag_it(lead_drive, planner):
    bag, scene = lead_drive
    report = evaluate_bags([bag], planner, every=4)
    frames = report.frames
    assert len(frames) == 5  # 0, 0.4, ..., 1.6 s: the selected sweeps with 4 s of odometry ahead
    held = MetricsConfig(collision=CollisionConfig(sweep_tolerance_s=math.inf))  # the current sweep, held still
    static = []
    for frame in frames:
        recorded = frame.baselines["recorded"]
        assert (recorded.collision, recorded.near_obstacle, recorded.unchecked_poses) == (False, False, 0)
        assert recorded.centre_line_clearance_m > 1.5
        t = (frame.stamp_ns - LEAD_DRIVE.start_time_ns) / 1e9
        now = [ObstacleSweep(0.0, obstacle_points(_scene_points(scene, t)))]
        static.append(evaluate_frame(frame.ground_truth[None], np.zeros(1), frame.ground_truth, sweeps=now,
                                     config=held))
    # held where it was at planning time, the lead car stands in the recorded path
    assert all(metrics.collision and metrics.near_obstacle for metrics in static)
    summary = report.overall()["baselines"]["recorded"]
    assert summary["near_obstacle_rate"] == 0.0 and summary["collision_rate"] == 0.0
