"""Random synthetic drives: determinism, variety, commands against turns, stops, bag contents; the demo unchanged."""
from __future__ import annotations

import functools
import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
from rosbags.rosbag2 import Reader
from test_synthetic_drive import TINY, TYPESTORE, as_plain, cloud_points, tf_matrix, write_and_read

from diffusiondrive_ros.tools import synthetic_drive as sd
from diffusiondrive_ros.tools.synthetic.bag import SCENARIO_FILE, make_drive, read_scenario
from diffusiondrive_ros.tools.synthetic.config import DriveConfig, RandomScenarioConfig, parse_camera_size
from diffusiondrive_ros.tools.synthetic.interface import (
    COMMAND_LEFT,
    COMMAND_RIGHT,
    COMMAND_STRAIGHT,
    LIDAR_FRAME,
    TOPIC_CAMERA_INFO,
    TOPIC_COMMAND,
    TOPIC_LIDAR,
    TOPIC_ODOMETRY,
    TOPIC_TF_STATIC,
    TOPIC_TYPES,
)
from diffusiondrive_ros.tools.synthetic.path import curve_pieces, integrate_path
from diffusiondrive_ros.tools.synthetic.scenario import SUMMARY_FORMAT
from diffusiondrive_ros.tools.synthetic.scene import SyntheticScene
from diffusiondrive_ros.tools.synthetic.speed import SpeedZone, plan_speed

# Low rates and tiny sensors keep every bag here to a second or two of writing.
FAST = dict(scenario="random", lidar_rate_hz=2.0, camera_rate_hz=2.0, odom_rate_hz=10.0, imu_rate_hz=10.0, **TINY)
TURN_CODES = {"left": COMMAND_LEFT, "straight": COMMAND_STRAIGHT, "right": COMMAND_RIGHT}
# Demo bag (TINY sensors, 0.5 s) digest from before random scenarios existed: the demo must stay byte-identical.
# Pinned on this environment's numpy/OpenCV/rosbags; regenerate with demo_digest() if those change on purpose.
DEMO_TINY_DIGEST = "acf54ce5aaa380efd70d15e1eca7e5513488620e817cd86f1eb8440c0711e4ee"


@functools.cache
def summary_of(seed: int, duration: float) -> dict:
    """Scenario summary of a random drive without writing its bag."""
    config = DriveConfig(seed=seed, duration_s=duration, scenario="random")
    return SyntheticScene(config).scenario.summary(config)


def first_seed(predicate, duration: float = 25.0, limit: int = 80) -> int:
    """Smallest seed whose summary satisfies ``predicate``."""
    for seed in range(limit):
        if predicate(summary_of(seed, duration)):
            return seed
    raise AssertionError(f"no seed below {limit} has the wanted scenario")


def yaw_of(odometry) -> float:
    """Heading (rad) of a nav_msgs/Odometry pose."""
    q = odometry.pose.pose.orientation
    return math.atan2(2 * (q.w * q.z + q.x * q.y), 1 - 2 * (q.y * q.y + q.z * q.z))


def at(items: list[tuple[int, object]], t: float, start_ns: int) -> object:
    """The message of ``items`` stamped last at or before ``t`` seconds into the drive."""
    stamps = [s for s, _ in items]
    return items[int(np.searchsorted(stamps, start_ns + round(t * 1e9), side="right")) - 1][1]


def demo_digest(path: Path) -> str:
    """sha256 over (topic, stamp, raw CDR) of every message of a bag."""
    digest = hashlib.sha256()
    with Reader(path) as reader:
        for conn, stamp, raw in reader.messages():
            digest.update(conn.topic.encode())
            digest.update(stamp.to_bytes(8, "little"))
            digest.update(raw)
    return digest.hexdigest()


def test_demo_scenario_is_byte_identical_to_before(tmp_path: Path):
    summary = make_drive(tmp_path / "demo", DriveConfig(duration_s=0.5, **TINY))
    assert demo_digest(tmp_path / "demo") == DEMO_TINY_DIGEST
    assert summary.scenario_file is None and not (tmp_path / "demo" / SCENARIO_FILE).exists()


def test_same_seed_gives_identical_bags_and_other_seeds_differ(tmp_path: Path):
    runs = [write_and_read(tmp_path / f"run{i}", DriveConfig(seed=seed, duration_s=1.0, **FAST))
            for i, seed in enumerate((5, 5, 6))]
    first, again, other = ([as_plain(m) for t in sorted(r.messages) for _, m in r.messages[t]] for r in runs)
    assert first == again
    assert (tmp_path / "run0" / SCENARIO_FILE).read_bytes() == (tmp_path / "run1" / SCENARIO_FILE).read_bytes()
    assert first != other
    clouds = [cloud_points(r.messages[TOPIC_LIDAR][0][1]) for r in (runs[0], runs[2])]
    assert len(clouds[0]) != len(clouds[1]) or not np.array_equal(clouds[0], clouds[1])


def test_seeds_draw_varied_layouts_traffic_and_lighting():
    summaries = [summary_of(seed, 40.0) for seed in range(12)]
    assert len({s["road"]["lane_width_m"] for s in summaries}) == 12
    assert len({s["lighting"]["exposure"] for s in summaries}) == 12
    lanes = [s["road"]["lane_width_m"] for s in summaries]
    assert 2.9 <= min(lanes) and max(lanes) <= 4.0 and max(lanes) - min(lanes) > 0.4
    intersections = [i for s in summaries for i in s["intersections"]]
    assert {i["kind"] for i in intersections} == {"T", "four-way"}
    assert {i["decision"] for i in intersections} == {"left", "straight", "right"}
    radii = [c["radius_m"] for s in summaries for c in s["curves"]]
    assert len(radii) >= 3 and max(radii) > 2 * min(radii)
    assert {st["reason"] for s in summaries for st in s["stops"]} >= {"vehicle", "pedestrian"}
    assert any(s["lead_vehicle"] for s in summaries) and not all(s["lead_vehicle"] for s in summaries)
    speeds = [v for s in summaries for v in s["ego"]["cruise_speeds_mps"]]
    assert 5.0 <= min(speeds) < 8.0 and 12.0 < max(speeds) <= 15.0


@pytest.mark.parametrize("decision", ["left", "right"])
def test_command_before_the_intersection_agrees_with_the_odometry_turn(tmp_path: Path, decision: str):
    seed = first_seed(lambda s: any(i["decision"] == decision and i["end_time_s"] is not None
                                    for i in s["intersections"]))
    node = next(i for i in summary_of(seed, 25.0)["intersections"] if i["decision"] == decision)
    config = DriveConfig(seed=seed, duration_s=node["end_time_s"] + 1.0, **FAST)
    bag = write_and_read(tmp_path / "turn", config)
    summary = read_scenario(tmp_path / "turn")
    node = next(i for i in summary["intersections"] if (i["x"], i["y"]) == (node["x"], node["y"]))
    start_ns = config.start_time_ns
    commands = [(s, m.data) for s, m in bag.messages[TOPIC_COMMAND]]
    code = TURN_CODES[decision]
    issued = [s for s, c in commands if c == code and s <= start_ns + round(node["start_time_s"] * 1e9)]
    assert issued, f"no {decision} command before the turn: {commands}"
    assert at(bag.messages[TOPIC_COMMAND], node["start_time_s"], start_ns).data == code
    assert at(bag.messages[TOPIC_COMMAND], (node["start_time_s"] + node["end_time_s"]) / 2, start_ns).data == code
    odometry = bag.messages[TOPIC_ODOMETRY]
    before, after = (yaw_of(at(odometry, t, start_ns)) for t in (node["start_time_s"], node["end_time_s"] + 0.5))
    change = math.degrees(math.remainder(after - before, 2 * math.pi))
    assert change == pytest.approx(90.0 if decision == "left" else -90.0, abs=3.0)
    assert node["heading_change_deg"] == pytest.approx(change, abs=3.0)
    assert [(c["time_s"], c["value"]) for c in summary["commands"]] == [
        (round((s - start_ns) / 1e9, 4), c) for s, c in commands]


@pytest.mark.parametrize("stays", [False, True])
def test_ego_stops_short_of_an_obstacle_that_lidar_sees(tmp_path: Path, stays: bool):
    def wanted(s: dict) -> bool:
        return any(st["reason"] in ("vehicle", "pedestrian") and (st["end_time_s"] is None) == stays
                   and st["start_time_s"] < 15.0 for st in s["stops"])

    seed = first_seed(wanted)
    stop = next(st for st in summary_of(seed, 25.0)["stops"] if st["reason"] in ("vehicle", "pedestrian"))
    duration = stop["start_time_s"] + (2.0 if stays else stop["end_time_s"] - stop["start_time_s"] + 3.0)
    config = DriveConfig(seed=seed, duration_s=duration, **{**FAST, "lidar_beams": 32, "lidar_azimuth_steps": 720})
    bag = write_and_read(tmp_path / "stop", config)
    stop = next(st for st in read_scenario(tmp_path / "stop")["stops"] if st["reason"] == stop["reason"])
    start_ns, odometry = config.start_time_ns, bag.messages[TOPIC_ODOMETRY]
    t_stop = stop["start_time_s"]
    standing = [m for s, m in odometry if start_ns + (t_stop + 0.05) * 1e9 <= s
                and (stays or s <= start_ns + (stop["end_time_s"] - 0.05) * 1e9)]
    assert standing and max(abs(m.twist.twist.linear.x) for m in standing) < 0.05
    assert at(odometry, t_stop - 3.0, start_ns).twist.twist.linear.x > 0.5
    if not stays:
        assert odometry[-1][1].twist.twist.linear.x > 0.5
    base_from_lidar = tf_matrix(bag.messages[TOPIC_TF_STATIC][0][1], LIDAR_FRAME)
    cloud = cloud_points(at(bag.messages[TOPIC_LIDAR], t_stop + 0.6, start_ns))
    xyz = np.column_stack([cloud["x"], cloud["y"], cloud["z"]]).astype(float)
    base = xyz @ base_from_lidar[:3, :3].T + base_from_lidar[:3, 3]
    ahead = base[(base[:, 0] > 0.0) & (base[:, 0] < 20.0) & (np.abs(base[:, 1]) < 1.2)
                 & (base[:, 2] > 0.4) & (base[:, 2] < 2.0)]
    assert len(ahead) >= 5, "the obstacle is not in the LiDAR points ahead"
    front_bumper = 3.9
    assert ahead[:, 0].min() == pytest.approx(front_bumper + stop["gap_m"], abs=0.4)


def test_random_drive_reads_back_with_every_topic_and_its_scenario(tmp_path: Path):
    config = DriveConfig(seed=2, duration_s=1.5, storage="sqlite3", **FAST)
    bag = write_and_read(tmp_path / "random", config)
    assert {t: c.msgtype for t, c in bag.connections.items()} == dict(TOPIC_TYPES)
    assert {t: len(m) for t, m in bag.messages.items()} == dict(bag.summary.counts)
    assert bag.summary.counts[TOPIC_LIDAR] == 3 and bag.summary.counts[TOPIC_ODOMETRY] == 15
    info = bag.messages[TOPIC_CAMERA_INFO["front"]][0][1]
    assert (info.width, info.height) == (TINY["image_width"], TINY["image_height"])
    assert bag.summary.scenario_file == tmp_path / "random" / SCENARIO_FILE
    summary = read_scenario(tmp_path / "random")
    assert summary["format"] == SUMMARY_FORMAT and summary["seed"] == 2 and summary["scenario"] == "random"
    assert set(summary) >= {"road", "ego", "lead_vehicle", "intersections", "curves", "stops", "commands",
                            "lighting", "counts"}
    assert summary["commands"][0] == {"time_s": 0.0, "value": bag.messages[TOPIC_COMMAND][0][1].data}
    assert summary == json.loads(json.dumps(SyntheticScene(config).scenario.summary(config)))


def test_long_durations_get_a_long_enough_route():
    for duration in (3.0, 90.0):
        config = DriveConfig(seed=9, duration_s=duration, scenario="random")
        scene = SyntheticScene(config)
        assert scene.motion.path.length >= duration * config.random.cruise_speed_mps[1]


def test_cli_random_scenario_with_a_small_camera(tmp_path: Path, capsys):
    out = tmp_path / "cli"
    assert sd.main([str(out), "--scenario", "random", "--seed", "4", "--duration", "0.2",
                    "--camera-size", "64x36"]) == 0
    assert SCENARIO_FILE in capsys.readouterr().out
    assert read_scenario(out)["seed"] == 4
    with Reader(out) as reader:
        (conn,) = [c for c in reader.connections if c.topic == TOPIC_CAMERA_INFO["left"]]
        info = TYPESTORE.deserialize_cdr(next(raw for _, _, raw in reader.messages([conn])), conn.msgtype)
    assert (info.width, info.height) == (64, 36)
    with pytest.raises(SystemExit):
        sd.main([str(tmp_path / "bad"), "--camera-size", "64"])


def test_configs_reject_bad_values():
    assert parse_camera_size("640x360") == (640, 360)
    for text in ("640", "0x10", "axb"):
        with pytest.raises(ValueError):
            parse_camera_size(text)
    with pytest.raises(ValueError):
        DriveConfig(scenario="town")
    for bad in (dict(stop_probability=1.5), dict(lane_width_m=(4.0, 3.0)), dict(parking_width_m=(0.5, 2.0))):
        with pytest.raises(ValueError):
            RandomScenarioConfig(**bad)


def test_speed_plan_meets_zones_within_its_acceleration_limits():
    zones = [SpeedZone(40.0, 60.0, 4.0, 12.0), SpeedZone(100.0, 100.0, 0.0, 8.0, dwell_s=3.0),
             SpeedZone(130.0, 150.0, 6.0, 10.0)]
    plan = plan_speed(zones, 15.0, 15.0, accel=1.5, decel=2.5)
    t = np.linspace(0.0, 60.0, 60001)
    distance, speed, accel = plan.profile.evaluate(t)
    assert accel.max() <= 1.5 + 1e-9 and accel.min() >= -2.5 - 1e-9 and speed.min() >= -1e-9
    for zone, arrival in zip(zones, plan.arrivals):
        inside = (distance >= zone.start_s - 1e-6) & (distance <= zone.end_s)
        assert speed[inside].max() <= zone.speed + 1e-3
        assert float(plan.profile.evaluate(arrival)[0]) == pytest.approx(zone.start_s, abs=1e-6)
    stopped = (t >= plan.arrivals[1]) & (t <= plan.arrivals[1] + 3.0)
    assert np.abs(distance[stopped] - 100.0).max() < 1e-6
    final = plan_speed([SpeedZone(50.0, 50.0, 0.0, 10.0, stays=True), SpeedZone(80.0, 90.0, 3.0, 10.0)],
                       10.0, 10.0, 1.0, 2.0)
    assert final.arrivals[1] is None and float(final.profile.evaluate(1e3)[0]) == pytest.approx(50.0)


def test_integrated_curve_matches_the_circle_and_offsets_scale_the_radius():
    path = integrate_path(0.0, 0.0, 0.0, [(10.0, 0.0, 0.0)] + curve_pieces(math.pi / 2, 20.0, 1e-3), step=0.05)
    x, y = path.position(path.length)
    assert (float(x), float(y)) == pytest.approx((30.0, 20.0), abs=1e-3)
    assert float(path.heading(path.length)) == pytest.approx(math.pi / 2)
    outer = path.offset(-2.0)
    assert outer.length == pytest.approx(10.0 + math.pi / 2 * 22.0, abs=1e-2)
    back = path.reversed()
    assert back.pose(0.0)[:2] == pytest.approx((30.0, 20.0), abs=1e-3)
    assert math.remainder(float(back.heading(0.0)), 2 * math.pi) == pytest.approx(-math.pi / 2)


def test_stop_probability_option_sets_the_odds_of_stops(tmp_path: Path, capsys):
    def stops_per_drive(odds: float) -> list[int]:
        counts = []
        for seed in range(4):
            config = DriveConfig(seed=seed, duration_s=40.0, scenario="random",
                                 random=RandomScenarioConfig(stop_probability=odds))
            counts.append(len(SyntheticScene(config).scenario.summary(config)["stops"]))
        return counts

    often, default = stops_per_drive(1.0), stops_per_drive(RandomScenarioConfig.stop_probability)
    assert sum(stops_per_drive(0.0)) == 0 and sum(often) > sum(default) and all(a >= b for a, b in zip(often, default))
    out = tmp_path / "stops"
    assert sd.main([str(out), "--scenario", "random", "--seed", "3", "--duration", "0.2", "--camera-size", "64x36",
                    "--stop-probability", "1"]) == 0
    for bad in (["--stop-probability", "1.5", "--scenario", "random"], ["--stop-probability", "0.9"]):
        with pytest.raises(SystemExit, match="stop-probability|stop_probability"):
            sd.main([str(tmp_path / "bad"), *bad])
