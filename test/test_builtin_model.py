"""The shipped compact model drives: checked on short held-out synthetic drives (seeds never used in training)
against looser versions of the README's targets, so a regression in features, model or weights fails CI."""
from __future__ import annotations

import pytest

from diffusiondrive_ros.planner import DEFAULT_CHECKPOINT, Planner
from diffusiondrive_ros.ros.pipeline import PipelineConfig
from diffusiondrive_ros.tools.evaluate import evaluate_bags
from diffusiondrive_ros.tools.synthetic.bag import make_drive
from diffusiondrive_ros.tools.synthetic.config import DriveConfig, RandomScenarioConfig

# Writing three 1080p drives and planning every second sweep takes 2.5 min alone, longer beside the other tests.
pytestmark = pytest.mark.timeout(900)

HELD_OUT = {  # bag name -> drive; training used random seeds 1000-1039, 1100-1107, 1200-1223, 1300-1307,
    # 3000-3023, 3100-3111, 40 of 3200-3363, 32 of 3400-3525 and 32 of 3600-3737, and demo seeds 2000-2009,
    # 2100-2101, 2200-2201
    "demo_left": DriveConfig(seed=9901, turn="left", duration_s=14.0),
    "random": DriveConfig(seed=9927, scenario="random", duration_s=14.0),  # left at a four-way crossing at 6.4 s
    "stop": DriveConfig(seed=9903, scenario="random", duration_s=16.0,
                        random=RandomScenarioConfig(stop_probability=1.0)),  # a car or pedestrian standing ahead
}


@pytest.fixture(scope="module")
def planner() -> Planner:
    return Planner.from_checkpoint(None, device="cpu")


@pytest.fixture(scope="module")
def report(planner, tmp_path_factory):
    root = tmp_path_factory.mktemp("held_out")
    bags = [make_drive(root / name, config).path for name, config in HELD_OUT.items()]
    return evaluate_bags(bags, planner, PipelineConfig(seed=0), every=2)


def test_the_default_is_the_shipped_compact_checkpoint(planner):
    assert DEFAULT_CHECKPOINT.is_file() and DEFAULT_CHECKPOINT.stat().st_size < 20 * 2**20
    assert planner.model.config.variant == "compact" and not planner.seeded
    assert str(DEFAULT_CHECKPOINT) in planner.describe()


def test_best_mode_beats_constant_velocity_on_every_held_out_drive(report):
    for bag in report.to_dict()["bags"]:
        assert bag["evaluated"] >= 20, bag["bag"]
        assert bag["ade_vs_constant_velocity"] < 0.8, (bag["bag"], bag["ade"], bag["baselines"]["constant_velocity"])


def test_best_mode_follows_turns_and_stays_off_obstacles(report):
    overall = report.overall()
    assert overall["turn_agreement_rate"] >= 0.6, overall["turn_agreement_rate"]
    assert overall["collision_rate"] <= 0.2, overall["collision_rate"]
    assert overall["min_ade"] < overall["ade"]  # the other modes are alternatives, not copies of the best


def test_best_mode_stops_for_what_stands_in_the_lane(report):
    scenario = report.to_dict()["overall"]["scenario"]
    assert scenario["num_stop_frames"] >= 20, scenario
    # 0.87 with these weights (stage 6; 0.91 on the README's held-out set); 0.91 with stage 5's, 0.87 with stage
    # 4's, 0.83 with stage 3's, 0.43 with stage 2's, 0.04 with stage 2's and the paper's noise
    assert scenario["stop_rate"] >= 0.6, scenario


def test_some_mode_takes_every_exit_of_the_intersection(report):
    scenario = report.to_dict()["overall"]["scenario"]
    assert scenario["num_intersection_frames"] >= 8, scenario
    # 1.0 with these weights (stage 6) and stage 5's; 0.37 with stage 4's, whose modes all bent toward the commanded
    # left turn
    assert scenario["branch_coverage"] >= 0.7, scenario
