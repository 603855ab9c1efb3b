"""SyntheticScene: the seeded drive (timeline, world, sensors), queryable at any time without a bag."""
from __future__ import annotations

import math

import numpy as np

from .camera import CAMERA_RIG, CameraModel
from .config import DriveConfig
from .geometry import pose_matrix, wrap
from .interface import CAMERA_NAMES
from .lidar import LIDAR_MOUNT, LidarModel
from .motion import EgoState
from .raster import Quads, Rasteriser, box_quads, ground_quads
from .scenario import build_scenario
from .world import BoxSet


class SyntheticScene:
    """The seeded drive: ego motion, world, sensor models; query any time without a bag."""

    def __init__(self, config: DriveConfig | None = None) -> None:
        self.config = config or DriveConfig()
        self.scenario = build_scenario(self.config)
        self.motion, self.layout, self.world = self.scenario.motion, self.scenario.layout, self.scenario.world
        self.cameras = {m.name: CameraModel.from_mount(m, self.config.image_width, self.config.image_height)
                        for m in CAMERA_RIG}
        self.lidar = LidarModel(pose_matrix(*LIDAR_MOUNT, 0.0), self.config.lidar_beams,
                                self.config.lidar_azimuth_steps, noise_std=self.config.lidar_noise_std_m)
        lighting = self.scenario.lighting
        self._rasterisers = {name: Rasteriser(cam, lighting) for name, cam in self.cameras.items()}
        self._ground = ground_quads(self.layout, lighting)
        self._sidewalk_quads = box_quads(self.world.sidewalks, lighting)
        self._solid_quads = box_quads(self.world.solids, lighting)
        self._moving_quads: tuple[float, Quads] | None = None

    @property
    def turn_command(self) -> int:
        """Command of the drive's first command window (the demo's turn)."""
        return self.scenario.command_windows[0][2]

    @property
    def command_start_distance(self) -> float:
        """Path distance where the first command window starts (demo: 30 m before the intersection edge)."""
        return self.scenario.command_windows[0][0]

    def ego_state(self, t: float) -> EgoState:
        """Ego kinematics at time ``t`` (seconds from the start of the drive)."""
        return self.motion.state(t)

    def ground_truth_future(self, t: float, num_poses: int = 8, interval_s: float = 0.5) -> np.ndarray:
        """(num_poses, 3) future x, y, heading of the ego in its own frame at time ``t``."""
        x0, y0, yaw0 = self.motion.poses(t)
        future = self.motion.poses(t + interval_s * np.arange(1, num_poses + 1))
        dx, dy = future[:, 0] - x0, future[:, 1] - y0
        c, s = math.cos(yaw0), math.sin(yaw0)
        return np.column_stack([c * dx + s * dy, -s * dx + c * dy, wrap(future[:, 2] - yaw0)])

    def command(self, t: float) -> int:
        """Driving command at ``t``: a turn's command from before its intersection until it is done."""
        return self.scenario.command_at(float(self.motion.speed.evaluate(t)[0]))

    def command_changes(self, t_end: float) -> list[tuple[float, int]]:
        """(time, command) at t=0 and at each change before ``t_end``."""
        return self.scenario.command_changes(t_end)

    def obstacles(self, t: float) -> BoxSet:
        """Buildings, vehicles and pedestrians at ``t`` (map frame)."""
        return self.world.obstacles_at(t)

    def lidar_sweep(self, t: float) -> np.ndarray:
        """(N, 4) float32 x, y, z, intensity in ``lidar_top``; noise is seeded by (seed, t)."""
        rng = np.random.default_rng([self.config.seed, round(t * 1e6) % 2**63])
        state = self.ego_state(t)
        return self.lidar.sweep(state.map_from_base(), self.world.boxes_at(t), self.layout, rng)

    def render_camera(self, name: str, t: float) -> np.ndarray:
        """(H, W, 3) uint8 RGB image of camera ``name`` ('left', 'front', 'right') at ``t``."""
        if name not in self.cameras:
            raise KeyError(f"unknown camera {name!r}; expected one of {CAMERA_NAMES}")
        map_from_camera = self.ego_state(t).map_from_base() @ self.cameras[name].base_from_camera
        if self._moving_quads is None or self._moving_quads[0] != t:
            self._moving_quads = (t, box_quads(self.world.moving_at(t), self.scenario.lighting))
        obstacles = Quads.concat([self._solid_quads, self._moving_quads[1]])
        layers = ((self._ground, False), (self._sidewalk_quads, True), (obstacles, True))
        return self._rasterisers[name].render(map_from_camera, layers)


def ground_truth_future(t: float, config: DriveConfig | None = None, num_poses: int = 8,
                        interval_s: float = 0.5) -> np.ndarray:
    """Convenience wrapper: ``SyntheticScene(config).ground_truth_future(t, ...)``."""
    return SyntheticScene(config).ground_truth_future(t, num_poses, interval_s)
