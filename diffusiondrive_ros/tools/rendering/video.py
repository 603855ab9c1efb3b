"""A whole bag as pictures: a PNG of every Nth frame and an H.264 MP4 of all of them, with a summary."""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .bag_frames import BagPath, RenderTopics, frames_from_bag
from .picture import compose, write_png


@dataclass(frozen=True)
class RenderSummary:
    """What `render_bag` wrote and how many frames had each input."""

    out_dir: Path
    png_paths: tuple[Path, ...]
    mp4_path: Path | None
    frame_count: int
    frames_with_lidar: int
    frames_with_camera: int
    frames_with_ground_truth: int
    wall_time_s: float

    @property
    def seconds_per_frame(self) -> float:
        """Average wall time per frame: reading, drawing and writing."""
        return self.wall_time_s / max(self.frame_count, 1)

    def format(self) -> str:
        """Human-readable summary for the command line."""
        lines = [
            f"rendered {self.frame_count} frames in {self.wall_time_s:.1f} s "
            f"({1000 * self.seconds_per_frame:.0f} ms per frame)",
            f"  with LiDAR {self.frames_with_lidar}, front camera {self.frames_with_camera}, "
            f"ground truth {self.frames_with_ground_truth}",
            f"  {len(self.png_paths)} PNG files in {self.out_dir}",
        ]
        if self.mp4_path is not None:
            lines.append(f"  video: {self.mp4_path}")
        return "\n".join(lines)


class _Mp4Writer:
    """H.264 (yuv420p) video through imageio-ffmpeg; frames of another size are resized to the first."""

    def __init__(self, path: Path, fps: float) -> None:
        self.path, self._fps = path, fps
        self._size: tuple[int, int] | None = None
        self._encoder = None

    def add(self, rgb: np.ndarray) -> None:
        """Append one RGB frame (even width and height)."""
        if self._encoder is None:
            self._start(rgb.shape[1], rgb.shape[0])
        if (rgb.shape[1], rgb.shape[0]) != self._size:
            rgb = cv2.resize(rgb, self._size, interpolation=cv2.INTER_AREA)
        self._encoder.send(np.ascontiguousarray(rgb))

    def _start(self, width: int, height: int) -> None:
        """Start ffmpeg for frames of this size."""
        try:
            import imageio_ffmpeg
        except ImportError:
            raise ImportError("MP4 output needs imageio-ffmpeg: pip install imageio-ffmpeg "
                               "(or the package's 'tools' extra), or pass mp4=False / --no-mp4") from None
        self._size = (width, height)
        self._encoder = imageio_ffmpeg.write_frames(
            str(self.path), self._size, fps=self._fps, codec="libx264", pix_fmt_out="yuv420p",
            quality=7, macro_block_size=2, output_params=["-movflags", "+faststart"])
        self._encoder.send(None)

    def close(self) -> None:
        """Finish the file (no file is written when no frame was added)."""
        if self._encoder is not None:
            self._encoder.close()


def render_bag(bag_dir: BagPath | Sequence[BagPath], out_dir: BagPath, png_every: int = 1, mp4: bool = True,
               fps: float = 10.0, topics: RenderTopics = RenderTopics()) -> RenderSummary:
    """Write `frame_<stamp>.png` for every `png_every`-th frame (0: none) and `drive.mp4` of all frames."""
    if png_every < 0:
        raise ValueError(f"png_every must be >= 0, got {png_every}")
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    started = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    video = _Mp4Writer(out / "drive.mp4", fps) if mp4 else None
    pngs: list[Path] = []
    counts = np.zeros(4, dtype=int)
    try:
        for number, frame in enumerate(frames_from_bag(bag_dir, topics)):
            picture = compose(frame)
            if png_every and number % png_every == 0:
                pngs.append(write_png(picture, out / f"frame_{frame.stamp_ns}.png"))
            if video is not None:
                video.add(picture)
            counts += (1, frame.points_ego is not None, frame.front_image is not None,
                       frame.ground_truth is not None)
    finally:
        if video is not None:
            video.close()
    return RenderSummary(out, tuple(pngs), None if video is None else video.path, *map(int, counts),
                         wall_time_s=time.perf_counter() - started)
