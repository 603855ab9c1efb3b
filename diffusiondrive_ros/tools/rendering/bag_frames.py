"""RenderFrames from bags: plans from the candidates markers matched with LiDAR, camera and odometry."""
from __future__ import annotations

import bisect
import heapq
import os
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2

from diffusiondrive_ros.geometry import transform_points, yaw_of_quaternion
from diffusiondrive_ros.ros import conversions
from diffusiondrive_ros.tools import topics
from diffusiondrive_ros.tools.bag_io import Bag, StaticTransforms, message_class, open_bag
from diffusiondrive_ros.training.ground_truth import OdometryTrack

from .frame import NS_PER_S, RenderFrame
from .geometry import PinholeCamera
from .markers import plan_from_markers

BagPath = str | os.PathLike
"""A rosbag2 folder, or a lone .mcap/.db3 file (see `bag_io.open_bag`)."""

_IMAGE_TOLERANCE_NS = 50_000_000  # nearest image within this of the plan stamp
_MAX_WAIT_NS = 2 * NS_PER_S  # stop waiting for a plan's sensors once sensor stamps are this far past it


@dataclass(frozen=True)
class RenderTopics:
    """Topics read from the bag."""

    candidates: str = topics.TOPIC_CANDIDATES
    lidar: str = topics.TOPIC_LIDAR
    front_image: str = topics.TOPIC_CAMERA_IMAGE["front"]
    front_camera_info: str = topics.TOPIC_CAMERA_INFO["front"]
    odometry: str = topics.TOPIC_ODOMETRY
    tf_static: str = topics.TOPIC_TF_STATIC


def _deserialize(raw: bytes, msgtype: str) -> object:
    """Rclpy message of CDR bytes from a bag."""
    return deserialize_message(raw, message_class(msgtype))


@dataclass(frozen=True, eq=False)
class _Plan:
    """Modes and scores of one candidates MarkerArray, with its stamp and frame."""

    stamp_ns: int
    frame_id: str
    modes: np.ndarray
    scores: np.ndarray


def _open(bag_dirs: Sequence[Path]) -> list[Bag]:
    """Open every bag (BagReadError for a path that is not one; a recording cut short is read up to the break)."""
    return [open_bag(bag) for bag in bag_dirs]


def _messages(bags: Sequence[Bag], topics: Iterable[str]) -> Iterator[tuple[str, str, int, bytes]]:
    """(topic, msgtype, log time, raw) of the topics in all bags, merged by log time."""
    wanted = set(topics)
    streams = [((m.topic, m.msgtype, m.timestamp_ns, m.raw) for m in bag.messages(wanted))
               for bag in bags if wanted & set(bag.topics)]
    return heapq.merge(*streams, key=lambda item: item[2])


@dataclass
class _BagIndex:
    """The small topics of the bags, read in a first pass: plans, odometry, transforms, camera info."""

    plans: list[_Plan] = field(default_factory=list)
    odometry: list[tuple[int, float, float, float]] = field(default_factory=list)
    transforms: StaticTransforms = field(default_factory=StaticTransforms)
    camera_info: CameraInfo | None = None


def _index(bags: Sequence[Bag], topics: RenderTopics) -> _BagIndex:
    """First pass over the small topics."""
    index = _BagIndex()
    small = (topics.candidates, topics.odometry, topics.tf_static, topics.front_camera_info)
    for topic, msgtype, _, raw in _messages(bags, small):
        if topic == topics.tf_static:
            index.transforms.add_raw(raw)
            continue
        msg = _deserialize(raw, msgtype)
        if topic == topics.candidates:
            modes, scores = plan_from_markers(msg)
            if len(modes):
                header = msg.markers[-1].header
                index.plans.append(_Plan(conversions.stamp_to_ns(header.stamp), header.frame_id, modes, scores))
        elif topic == topics.odometry:
            pose = msg.pose.pose
            q = pose.orientation
            index.odometry.append((conversions.stamp_to_ns(msg.header.stamp), pose.position.x,
                                   pose.position.y, yaw_of_quaternion(q.w, q.x, q.y, q.z)))
        elif index.camera_info is None:
            index.camera_info = msg
    return index


@dataclass
class _Pending:
    """A plan waiting for its LiDAR cloud and nearest front image from the second pass."""

    plan: _Plan
    cloud: PointCloud2 | None = None
    image: CompressedImage | Image | None = None
    image_offset_ns: int | None = None


class _Matcher:
    """Pairs plans with the cloud of the same stamp and the nearest image, yielding them in stamp order.

    Waiting is measured in header stamps, not bag log times, which may run on another clock.
    A stamp planned twice keeps the last plan.
    """

    def __init__(self, plans: Sequence[_Plan], wants_cloud: bool, wants_image: bool) -> None:
        self._by_stamp = {plan.stamp_ns: _Pending(plan) for plan in plans}
        self._stamps = sorted(self._by_stamp)
        self._queue = deque(self._by_stamp[stamp] for stamp in self._stamps)
        self._wants_cloud, self._wants_image = wants_cloud, wants_image
        self._latest_image_ns = self._latest_sensor_ns = -1

    def add_cloud(self, cloud: PointCloud2) -> None:
        """Attach a cloud to the plan of the same stamp, if any."""
        stamp = conversions.stamp_to_ns(cloud.header.stamp)
        self._latest_sensor_ns = max(self._latest_sensor_ns, stamp)
        item = self._by_stamp.get(stamp)
        if item is not None:
            item.cloud = cloud

    def add_image(self, image: CompressedImage | Image) -> None:
        """Attach an image to every plan it is nearer to than the image that plan has."""
        stamp = conversions.stamp_to_ns(image.header.stamp)
        self._latest_image_ns = max(self._latest_image_ns, stamp)
        self._latest_sensor_ns = max(self._latest_sensor_ns, stamp)
        low = bisect.bisect_left(self._stamps, stamp - _IMAGE_TOLERANCE_NS)
        high = bisect.bisect_right(self._stamps, stamp + _IMAGE_TOLERANCE_NS)
        for plan_stamp in self._stamps[low:high]:
            item = self._by_stamp.get(plan_stamp)
            offset = abs(stamp - plan_stamp)
            if item is not None and (item.image_offset_ns is None or offset < item.image_offset_ns):
                item.image, item.image_offset_ns = image, offset

    def _complete(self, item: _Pending) -> bool:
        """Whether nothing better can still arrive for this plan."""
        stamp = item.plan.stamp_ns
        has_cloud = item.cloud is not None or not self._wants_cloud
        has_image = (not self._wants_image or item.image_offset_ns == 0
                     or self._latest_image_ns > stamp + _IMAGE_TOLERANCE_NS)
        return has_cloud and has_image

    def ready(self, flush: bool = False) -> Iterator[_Pending]:
        """Pop plans from the front that are complete or waited for too long (all with `flush`)."""
        while self._queue:
            item = self._queue[0]
            stale = flush or self._latest_sensor_ns > item.plan.stamp_ns + _MAX_WAIT_NS
            if not (stale or self._complete(item)):
                return
            self._queue.popleft()
            del self._by_stamp[item.plan.stamp_ns]
            yield item


class _FrameBuilder:
    """Turns a matched plan into a RenderFrame: points and camera in the plan's frame, ground truth."""

    def __init__(self, index: _BagIndex) -> None:
        self._transforms = index.transforms
        self._camera_info = index.camera_info
        self._odometry = OdometryTrack.from_samples(index.odometry)
        self._cameras: dict[tuple[str, str], PinholeCamera | None] = {}

    def build(self, item: _Pending) -> RenderFrame:
        """RenderFrame of one plan and its sensors."""
        plan = item.plan
        return RenderFrame(
            stamp_ns=plan.stamp_ns, modes=plan.modes, scores=plan.scores,
            best_index=int(np.argmax(plan.scores)),
            points_ego=self._points(item.cloud, plan.frame_id),
            ground_truth=self._odometry.future(plan.stamp_ns, plan.modes.shape[1]),
            front_image=None if item.image is None else _image_rgb(item.image),
            camera=self._camera(item.image, plan.frame_id),
        )

    def _points(self, cloud: PointCloud2 | None, base_frame: str) -> np.ndarray | None:
        """Cloud xyz in the plan's frame, or None without a cloud or a transform to it."""
        if cloud is None:
            return None
        base_from_cloud = self._transforms.lookup(base_frame, cloud.header.frame_id)
        if base_from_cloud is None:
            return None
        return transform_points(conversions.pointcloud2_to_points(cloud).points, base_from_cloud)

    def _camera(self, image: CompressedImage | Image | None, base_frame: str) -> PinholeCamera | None:
        """Front camera from its CameraInfo and the static pose of the image's (or info's) frame."""
        if self._camera_info is None:
            return None
        frame = image.header.frame_id if image is not None else self._camera_info.header.frame_id
        key = (base_frame, frame)
        if key not in self._cameras:
            base_from_optical = self._transforms.lookup(base_frame, frame)
            self._cameras[key] = None if base_from_optical is None else PinholeCamera.from_camera_info(
                self._camera_info, base_from_optical)
        return self._cameras[key]


def _image_rgb(msg: CompressedImage | Image) -> np.ndarray:
    """RGB pixels of a raw or compressed image message."""
    if isinstance(msg, CompressedImage):
        return conversions.compressed_to_rgb(msg)
    return conversions.image_to_rgb(msg)


def _bag_paths(bag_dir: BagPath | Sequence[BagPath]) -> list[Path]:
    """One bag or several (e.g. the input bag and an outputs-only bag) as a list of paths."""
    if isinstance(bag_dir, (str, os.PathLike)):
        return [Path(bag_dir)]
    return [Path(bag) for bag in bag_dir]


def frames_from_bag(bag_dir: BagPath | Sequence[BagPath], topics: RenderTopics = RenderTopics()
                    ) -> Iterator[RenderFrame]:
    """One RenderFrame per candidates MarkerArray stamp (arrays without modes skipped), in stamp order.

    Two passes: the small topics first (plans, odometry for the ground truth, /tf_static, camera
    info), then the LiDAR clouds (same stamp as the plan) and front images (nearest within 50 ms),
    decoding only those that belong to a plan. Several bags are merged by log time.
    """
    paths = _bag_paths(bag_dir)
    bags = _open(paths)
    index = _index(bags, topics)
    if not index.plans:
        names = ", ".join(str(path) for path in paths)
        raise ValueError(f"no {topics.candidates} MarkerArray with modes in {names}")
    present = {topic for bag in bags for topic in bag.topics}
    matcher = _Matcher(index.plans, topics.lidar in present, topics.front_image in present)
    builder = _FrameBuilder(index)
    for topic, msgtype, _, raw in _messages(bags, (topics.lidar, topics.front_image)):
        msg = _deserialize(raw, msgtype)
        if topic == topics.lidar:
            matcher.add_cloud(msg)
        else:
            matcher.add_image(msg)
        yield from map(builder.build, matcher.ready())
    yield from map(builder.build, matcher.ready(flush=True))
