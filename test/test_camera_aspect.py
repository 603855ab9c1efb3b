"""The camera-resolution rule: crops scale with each camera's size, and a camera whose aspect ratio differs from
the rig's reference is reported (once per camera and size) because the resize then stretches its picture."""
from __future__ import annotations

import numpy as np
import pytest

from diffusiondrive_ros.features import CameraRigConfig, stitch_cameras


@pytest.mark.parametrize(("height", "width"), [(1080, 1920), (720, 1280), (360, 640), (1081, 1920)])
def test_reference_aspect_ratio_is_not_reported(height: int, width: int) -> None:
    assert CameraRigConfig().aspect_ratio_note(height, width) == ""


@pytest.mark.parametrize(("height", "width", "stretch"), [(1200, 1920, "1.111"), (400, 1280, "0.556"),
                                                          (1080, 1440, "1.333")])
def test_other_aspect_ratios_say_how_the_picture_is_stretched(height: int, width: int, stretch: str) -> None:
    note = CameraRigConfig().aspect_ratio_note(height, width)
    assert note.startswith(f"{width}x{height} image has aspect ratio {width / height:.3f}, the rig 1920x1080 has 1.778")
    assert f"its width is scaled {stretch}x relative to its height in the model's 1024x256 panorama" in note


def test_stretch_in_the_note_is_what_the_stitched_panorama_gets() -> None:
    """With an output size that keeps a reference-size (16:9) rig undistorted, a 4:3 camera's panorama has its
    width scaled relative to its height by exactly the factor the note states."""
    rig = CameraRigConfig(crop_top=0, crop_bottom=0, side_crop=0, output_width=320, output_height=60)

    def stretch(height: int, width: int) -> float:
        output = stitch_cameras(*[np.zeros((height, width, 3), np.uint8)] * 3, rig)
        return (output.shape[1] / output.shape[0]) / (3 * width / height)

    assert stretch(54, 96) == pytest.approx(1.0) and rig.aspect_ratio_note(54, 96) == ""
    assert stretch(60, 80) == pytest.approx(4 / 3)
    assert "its width is scaled 1.333x relative to its height" in rig.aspect_ratio_note(60, 80)
