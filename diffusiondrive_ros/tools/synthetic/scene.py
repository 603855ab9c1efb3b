"""SyntheticScene: the seeded drive (timeline, world, sensors), queryable at any time without a bag."""
from __future__ import annotations

import math

import numpy as np

from .camera import CAMERA_RIG, CameraModel
from .config import DriveConfig
from .geometry import pose_matrix, wrap
from .interface import CAMERA_NAMES, COMMAND_LEFT, COMMAND_RIGHT, COMMAND_STRAIGHT
from .layout import RoadLayout
from .lidar import LIDAR_MOUNT, LidarModel
from .motion import EgoMotion, EgoState, SpeedProfile, TurnPath
from .raster import Quads, Rasteriser, box_quads, ground_quads
from .world import BoxSet, build_world

# Timeline (s, m/s): cruise, slow for the turn, turn, speed up, cruise, stop behind the vehicle.
_SPEED_KNOTS = ((0.0, 10.0), (4.0, 10.0), (6.0, 6.0), (10.0, 6.0), (12.0, 9.0), (14.0, 9.0), (18.0, 0.0))
_EGO_START = (0.0, -1.75)
_TURN_START_S = 57.0
_COMMAND_LEAD_M = 30.0


class SyntheticScene:
    """The seeded drive: ego motion, world, sensor models; query any time without a bag."""

    def __init__(self, config: DriveConfig | None = None) -> None:
        self.config = config or DriveConfig()
        sign = 1 if self.config.turn == "left" else -1
        path = TurnPath(_EGO_START[0], _EGO_START[1], _TURN_START_S, sign)
        self.motion = EgoMotion(SpeedProfile(*zip(*_SPEED_KNOTS)), path)
        exit_lane_x = path.end_point[0]
        center_x = exit_lane_x - sign * RoadLayout.lane_width / 2
        self.layout = RoadLayout(center_x=center_x)
        self.world = build_world(np.random.default_rng(self.config.seed), self.layout, self.motion)
        self.cameras = {m.name: CameraModel.from_mount(m, self.config.image_width, self.config.image_height)
                        for m in CAMERA_RIG}
        self.lidar = LidarModel(pose_matrix(*LIDAR_MOUNT, 0.0), self.config.lidar_beams,
                                self.config.lidar_azimuth_steps, noise_std=self.config.lidar_noise_std_m)
        self._rasterisers = {name: Rasteriser(cam) for name, cam in self.cameras.items()}
        self._ground = ground_quads(self.layout)
        self._sidewalk_quads = box_quads(self.world.sidewalks)
        self._solid_quads = box_quads(self.world.solids)

    @property
    def turn_command(self) -> int:
        """Command issued for this drive's turn."""
        return COMMAND_LEFT if self.config.turn == "left" else COMMAND_RIGHT

    @property
    def command_start_distance(self) -> float:
        """Path distance where the turn command starts: 30 m before the intersection edge."""
        edge_x = self.layout.center_x - self.layout.half_width
        return edge_x - _COMMAND_LEAD_M - _EGO_START[0]

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
        """Driving command at ``t``: the turn from 30 m before the intersection until it is done."""
        s = float(self.motion.speed.evaluate(t)[0])
        in_turn_window = self.command_start_distance <= s < self.motion.path.turn_end
        return self.turn_command if in_turn_window else COMMAND_STRAIGHT

    def command_changes(self, t_end: float) -> list[tuple[float, int]]:
        """(time, command) at t=0 and at each change before ``t_end``."""
        changes = [(0.0, self.command(0.0))]
        for s in (self.command_start_distance, self.motion.path.turn_end):
            t = self.motion.speed.time_at_distance(s, t_end)
            if t is not None and 0.0 < t < t_end:
                changes.append((t, self.command(t)))
        return sorted(changes)

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
        moving = self.world.movers.moved(self.world.mover_velocity * t)
        obstacles = Quads.concat([self._solid_quads, box_quads(moving)])
        layers = ((self._ground, False), (self._sidewalk_quads, True), (obstacles, True))
        return self._rasterisers[name].render(map_from_camera, layers)


def ground_truth_future(t: float, config: DriveConfig | None = None, num_poses: int = 8,
                        interval_s: float = 0.5) -> np.ndarray:
    """Convenience wrapper: ``SyntheticScene(config).ground_truth_future(t, ...)``."""
    return SyntheticScene(config).ground_truth_future(t, num_poses, interval_s)
