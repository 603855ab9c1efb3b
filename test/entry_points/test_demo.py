"""The README's main job, end to end on a short drive: input bag, output bag, PNGs, MP4, evaluation, summary."""
import collections
import json

import cv2

from diffusiondrive_ros.cli import main


def test_demo_end_to_end(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--duration", "4.6", "--device", "cpu", "--png-every", "10"]) == 0
    printed = capsys.readouterr().out
    assert "replayed 46 point clouds -> 46 planned, 0 skipped" in printed
    assert str((tmp_path / "render" / "drive.mp4").resolve()) in printed
    overall = json.loads((tmp_path / "eval.json").read_text())["overall"]
    assert overall["evaluated"] == 6 and overall["skipped"] == {"no_future": 40}  # sweeps with a full 4 s future
    cv = overall["baselines"]["constant_velocity"]["ade"]
    assert f"best mode ADE {overall['ade']:.2f} m vs constant velocity {cv:.2f} m" in printed

    from mcap_ros2.reader import read_ros2_messages

    counts = collections.Counter(m.schema.name for m in read_ros2_messages(next((tmp_path / "replay").glob("*.mcap"))))
    assert counts["nav_msgs/msg/Path"] == counts["visualization_msgs/msg/MarkerArray"] == 46
    assert counts["sensor_msgs/msg/PointCloud2"] == 46

    pngs = sorted((tmp_path / "render").glob("*.png"))
    assert len(pngs) == 5
    image = cv2.imread(str(pngs[0]))
    assert image is not None and len(set(map(tuple, image.reshape(-1, 3)[::97]))) > 200
    video = cv2.VideoCapture(str(tmp_path / "render" / "drive.mp4"))
    frames = 0
    while video.read()[0]:
        frames += 1
    assert frames == 46
