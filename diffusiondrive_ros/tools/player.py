"""Play a rosbag2 into the live ROS 2 graph in real time (or scaled by --rate), with /clock from the bag timestamps.

The substitute for `ros2 bag play --clock` where rosbag2_py and the ros2 CLI are not installed (ROS 2 from PyPI):
every message is published as its raw CDR bytes (no deserialise/serialise cost) at its bag timestamp, scaled by
`--rate`, with a rosgraph_msgs/Clock carrying that timestamp right before it and `--clock-hz` Clocks in between,
so nodes with use_sim_time follow the bag. Publishers are reliable (a reliable publisher matches reliable and
best-effort subscribers); durability and depth come from the offered QoS recorded in the bag. Topics whose message
type has no rclpy class here (tf2_msgs/TFMessage on /tf_static: no PyPI wheel) are skipped with a note.
`--wait-for-subscribers SECONDS` waits until every played topic has a subscriber, because messages published before
discovery are lost on volatile topics. Ctrl-C stops cleanly and still prints the summary. A recording cut short is
played up to its break (`bag_io.open_bag`, with a WARN saying what was recovered).
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import rclpy
from rclpy.context import Context
from rclpy.duration import Duration
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from rosbags.interfaces import QosDurability, QosHistory
from rosgraph_msgs.msg import Clock

from ..errors import InputError, report
from ..ros.conversions import ns_to_stamp
from .bag_io import BagMessage, message_class, open_bag, read_bag

CLOCK_TOPIC = "/clock"
DEFAULT_DEPTH = 10
LATCHED_TOPICS = ("/command", "/tf_static")  # transient-local when the bag records no offered QoS
LARGE_TYPES = ("sensor_msgs/msg/PointCloud2", "sensor_msgs/msg/Image")
POLL_S = 0.05  # longest uninterrupted sleep, so stop() and Ctrl-C act quickly
FLUSH_S = 2.0  # at the end, how long reliable subscribers get to acknowledge the last messages


@dataclass(frozen=True)
class PlayOptions:
    """How to play a bag; the defaults play everything once in real time with a 100 Hz /clock."""

    rate: float = 1.0
    start_offset_s: float = 0.0
    topics: Sequence[str] | None = None  # bag topics to play; None = all
    remaps: Mapping[str, str] = field(default_factory=dict)  # bag topic -> published topic
    loop: bool = False
    clock: bool = True
    clock_hz: float = 100.0  # Clocks between messages per wall-clock second; 0 = only one before each message
    wait_for_subscribers_s: float = 0.0  # 0 = start at once
    settle_s: float = 0.2  # after every topic is matched: time for the subscribers' side of discovery to finish
    late_threshold_s: float = 0.01  # a message published later than this after its scheduled time counts as late
    domain_id: int | None = None  # None = ROS_DOMAIN_ID
    node_name: str = "diffusiondrive_player"

    def __post_init__(self) -> None:
        if self.rate <= 0:
            raise ValueError(f"rate must be positive, got {self.rate}")
        if self.start_offset_s < 0 or self.clock_hz < 0 or self.wait_for_subscribers_s < 0 or self.settle_s < 0:
            raise ValueError("start offset, clock rate, subscriber wait and settle time must not be negative")


@dataclass(frozen=True)
class TopicPlan:
    """One played topic: where it goes, with which message class and QoS."""

    bag_topic: str
    topic: str
    msgtype: str
    qos: QoSProfile
    msg_class: Any


@dataclass
class PlaySummary:
    """What was played: messages per bag topic, timing and what could not be played."""

    messages: Counter = field(default_factory=Counter)
    clocks: int = 0
    wall_s: float = 0.0  # playing time, from the first message's schedule on (the subscriber wait not included)
    bag_span_s: float = 0.0
    max_lateness_s: float = 0.0
    late: int = 0
    loops: int = 0
    interrupted: bool = False
    skipped_topics: dict[str, str] = field(default_factory=dict)
    unmatched_topics: list[str] = field(default_factory=list)

    def format(self) -> str:
        """Human-readable multi-line summary for the command line."""
        lines = [f"played {sum(self.messages.values())} messages ({self.bag_span_s:.2f} s of bag time) in "
                 f"{self.wall_s:.2f} s, {self.loops} pass(es), {self.clocks} /clock messages"
                 + (", stopped early" if self.interrupted else "")]
        lines += [f"  {topic:<40} {count:>7}" for topic, count in sorted(self.messages.items())]
        lines.append(f"  late (> scheduled time + threshold): {self.late}, "
                     f"max lateness {self.max_lateness_s * 1e3:.1f} ms")
        lines += [f"  skipped {topic}: {why}" for topic, why in sorted(self.skipped_topics.items())]
        lines += [f"  no subscriber before playing: {topic}" for topic in self.unmatched_topics]
        return "\n".join(lines)


@dataclass(frozen=True)
class BagInfo:
    """Topics (msgtype, offered QoS profiles) and time span of a bag, from its metadata."""

    topics: dict[str, tuple[str, list[Any]]]
    start_ns: int
    end_ns: int


def bag_info(path: Path) -> BagInfo:
    """Topics, types and offered QoS profiles; from the metadata, or from the files of a recording cut short."""
    bag = open_bag(path)
    topics = {topic: (info.msgtype, list(info.offered_qos)) for topic, info in bag.topics.items()}
    return BagInfo(topics, bag.start_ns, bag.end_ns)


def publisher_qos(topic: str, offered: Sequence[Any]) -> QoSProfile:
    """Reliable always; transient-local when every recorded publisher offered it (or a latched topic without QoS).

    Reliable, because a reliable publisher reaches reliable and best-effort subscribers alike. Transient-local only
    when all recorded publishers were, as a volatile subscriber still matches it but it is the latching the
    recording shows. Depth is the largest offered KEEP_LAST depth.
    """
    if not offered:
        latched = topic in LATCHED_TOPICS
        return QoSProfile(depth=1 if latched else DEFAULT_DEPTH, reliability=ReliabilityPolicy.RELIABLE,
                          durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)
    transient = all(p.durability == QosDurability.TRANSIENT_LOCAL for p in offered)
    keep_all = any(p.history == QosHistory.KEEP_ALL for p in offered)
    depth = max((p.depth for p in offered if p.history == QosHistory.KEEP_LAST and p.depth > 0), default=DEFAULT_DEPTH)
    return QoSProfile(history=HistoryPolicy.KEEP_ALL if keep_all else HistoryPolicy.KEEP_LAST, depth=depth,
                      reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL if transient else DurabilityPolicy.VOLATILE)


def plan_topics(info: BagInfo, options: PlayOptions) -> tuple[dict[str, TopicPlan], dict[str, str]]:
    """(bag topic -> plan, skipped bag topic -> reason); raises ValueError for a --topics name not in the bag."""
    wanted = list(info.topics) if options.topics is None else list(options.topics)
    missing = [t for t in wanted if t not in info.topics]
    if missing:
        raise ValueError(f"topics {missing} are not in the bag; it has {sorted(info.topics)}")
    plans: dict[str, TopicPlan] = {}
    skipped: dict[str, str] = {}
    for topic in wanted:
        msgtype, offered = info.topics[topic]
        try:
            msg_class = message_class(msgtype)
        except (ImportError, AttributeError):
            skipped[topic] = f"{msgtype} has no rclpy message class in this environment"
            continue
        plans[topic] = TopicPlan(topic, options.remaps.get(topic, topic), msgtype, publisher_qos(topic, offered),
                                 msg_class)
    return plans, skipped


def parse_remaps(pairs: Iterable[str]) -> dict[str, str]:
    """['FROM:=TO', ...] -> {FROM: TO}; the ros2 remapping syntax, for topics only."""
    remaps = {}
    for pair in pairs:
        source, sep, target = pair.partition(":=")
        if not sep or not source or not target:
            raise ValueError(f"remap {pair!r} is not FROM:=TO")
        remaps[source] = target
    return remaps


def from_offset(messages: Iterator[BagMessage], start_ns: int, latched: Sequence[str]) -> Iterator[BagMessage]:
    """Messages from `start_ns` on; the newest message of each latched topic before it is re-timed to `start_ns`.

    Latched topics (the driving command) carry state that a late joiner still needs, so skipping the beginning
    of the bag must not drop it.
    """
    held: dict[str, BagMessage] = {}
    for message in messages:
        if message.timestamp_ns >= start_ns:
            yield from held.values()
            held.clear()
            yield message
        elif message.topic in latched:
            held[message.topic] = dataclasses.replace(message, timestamp_ns=start_ns)
    yield from held.values()


def flush(publishers: Iterable[Any]) -> None:
    """Give reliable subscribers up to FLUSH_S to acknowledge everything, as destroying a writer drops its queue."""
    deadline = time.monotonic() + FLUSH_S
    for publisher in publishers:
        publisher.wait_for_all_acked(Duration(seconds=max(0.0, deadline - time.monotonic())))


class SimClock:
    """Publishes /clock, never backwards within a pass, plus periodic ticks between messages."""

    def __init__(self, publisher: Any | None, hz: float):
        self.publisher = publisher
        self.period_s = 1.0 / hz if publisher is not None and hz > 0 else None
        self.last_ns: int | None = None
        self.next_tick = 0.0
        self.count = 0

    def reset(self, now: float) -> None:
        """Start of a pass: the bag time may jump back (--loop), and the first tick is due one period from now."""
        self.last_ns = None
        self.next_tick = now + (self.period_s or 0.0)

    def publish(self, stamp_ns: int) -> None:
        if self.publisher is None or (self.last_ns is not None and stamp_ns <= self.last_ns):
            return
        self.publisher.publish(Clock(clock=ns_to_stamp(stamp_ns)))
        self.last_ns = stamp_ns
        self.count += 1

    def tick(self, now: float, stamp_ns: int) -> None:
        """Publish `stamp_ns` when a tick is due at wall time `now`."""
        if self.period_s is None or now < self.next_tick:
            return
        self.publish(stamp_ns)
        self.next_tick += self.period_s
        if self.next_tick <= now:  # fell behind (a long publish): resume the cadence from now, no burst
            self.next_tick = now + self.period_s

    def wake_time(self, due: float) -> float:
        return due if self.period_s is None else min(due, self.next_tick)


class Player:
    """Publishes a bag's messages on live topics at their (rate-scaled) bag times; `play()` blocks, `stop()` ends it.

    Usable from another thread: `ready` is set once the publishers exist and the subscriber wait is over, i.e.
    when the first message is about to go out.
    """

    def __init__(self, bag: Path, options: PlayOptions = PlayOptions()):
        self.bag = Path(bag)
        self.options = options
        self.info = bag_info(self.bag)
        self.plans, self.skipped = plan_topics(self.info, options)
        self.ready = threading.Event()
        self._stop = threading.Event()

    def stop(self) -> None:
        """Ask `play()` to return after the current message (thread- and signal-safe)."""
        self._stop.set()

    def play(self) -> PlaySummary:
        """Play the bag (once, or until stopped with loop); Ctrl-C in the playing thread counts as stop()."""
        summary = PlaySummary(skipped_topics=dict(self.skipped))
        context = Context()
        # not sys.argv: FROM:=TO is ours. No rclpy signal handlers: Ctrl-C stops the loop below, which then shuts its
        # context down itself, instead of rclpy's signal thread shutting it down under the publishing loop.
        rclpy.init(args=[], context=context, domain_id=self.options.domain_id,
                   signal_handler_options=SignalHandlerOptions.NO)
        node, clock, started = None, None, None
        try:
            node = rclpy.create_node(self.options.node_name, context=context)
            publishers = {topic: node.create_publisher(p.msg_class, p.topic, p.qos) for topic, p in self.plans.items()}
            clock_qos = QoSProfile(depth=DEFAULT_DEPTH, reliability=ReliabilityPolicy.RELIABLE)
            clock = SimClock(node.create_publisher(Clock, CLOCK_TOPIC, clock_qos) if self.options.clock else None,
                             self.options.clock_hz)
            summary.unmatched_topics = self._wait_for_subscribers(publishers)
            self.ready.set()
            started = time.monotonic()
            self._play_passes(publishers, clock, summary)
            flush(publishers.values())
        except KeyboardInterrupt:
            self._stop.set()
        finally:
            summary.wall_s = time.monotonic() - started if started is not None else 0.0
            summary.clocks = clock.count if clock else 0
            summary.interrupted = self._stop.is_set()
            self.ready.set()
            if node is not None:
                node.destroy_node()
            rclpy.try_shutdown(context=context)
        return summary

    def _wait_for_subscribers(self, publishers: Mapping[str, Any]) -> list[str]:
        """Wait up to wait_for_subscribers_s until every publisher is matched; returns the topics still unmatched."""
        timeout = self.options.wait_for_subscribers_s
        if timeout <= 0:
            return []
        deadline = time.monotonic() + timeout
        unmatched = list(publishers)
        while unmatched and time.monotonic() < deadline and not self._stop.is_set():
            unmatched = [t for t, pub in publishers.items() if pub.get_subscription_count() == 0]
            time.sleep(POLL_S)
        if len(unmatched) < len(publishers):
            self._stop.wait(self.options.settle_s)
        return [self.plans[t].topic for t in unmatched]

    def _play_passes(self, publishers: Mapping[str, Any], clock: SimClock, summary: PlaySummary) -> None:
        start_ns = self.info.start_ns + int(self.options.start_offset_s * 1e9)
        latched = [t for t, p in self.plans.items() if p.qos.durability == DurabilityPolicy.TRANSIENT_LOCAL]
        while not self._stop.is_set():
            _, _, messages = read_bag(self.bag)
            wanted = (m for m in messages if m.topic in self.plans)
            played = sum(summary.messages.values())
            last_ns = self._play_pass(from_offset(wanted, start_ns, latched), start_ns, publishers, clock, summary)
            summary.loops += 1
            summary.bag_span_s += max(0, last_ns - start_ns) / 1e9
            if not self.options.loop or sum(summary.messages.values()) == played:  # nothing to loop over
                return

    def _play_pass(self, messages: Iterator[BagMessage], start_ns: int, publishers: Mapping[str, Any],
                   clock: SimClock, summary: PlaySummary) -> int:
        """Publish one pass in real time scaled by rate; returns the last played bag time."""
        origin = time.monotonic()
        clock.reset(origin)
        last_ns = start_ns
        for message in messages:
            due = origin + (message.timestamp_ns - start_ns) / 1e9 / self.options.rate
            if not self._wait_until(due, origin, start_ns, message.timestamp_ns, clock):
                break
            lateness = time.monotonic() - due
            summary.max_lateness_s = max(summary.max_lateness_s, lateness)
            summary.late += lateness > self.options.late_threshold_s
            clock.publish(message.timestamp_ns)
            publishers[message.topic].publish(message.raw)
            summary.messages[message.topic] += 1
            last_ns = message.timestamp_ns
        return last_ns

    def _wait_until(self, due: float, origin: float, start_ns: int, next_ns: int, clock: SimClock) -> bool:
        """Sleep until wall time `due`, ticking /clock on the way (never past `next_ns`); False when stopped."""
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= due:
                return True
            clock.tick(now, min(next_ns, start_ns + int((now - origin) * self.options.rate * 1e9)))
            time.sleep(max(0.0, min(clock.wake_time(due), now + POLL_S) - time.monotonic()))
        return False


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `diffusiondrive-ros play` options (named like ros2 bag play's where they mean the same)."""
    parser.add_argument("bag", type=Path, help="rosbag2 directory (sqlite3 or MCAP)")
    parser.add_argument("--rate", type=float, default=1.0, help="playback speed factor (0.5 = half speed)")
    parser.add_argument("--start-offset", type=float, default=0.0, metavar="SECONDS",
                        help="skip this much bag time from the start (latched topics still get their last message)")
    parser.add_argument("--topics", nargs="+", metavar="TOPIC", help="play only these bag topics")
    parser.add_argument("--remap", action="append", default=[], metavar="FROM:=TO", help="publish bag topic FROM on TO")
    parser.add_argument("--loop", action="store_true",
                        help="play again from the start until stopped (/clock jumps back)")
    parser.add_argument("--clock-hz", type=float, default=100.0,
                        help="/clock messages per second between messages (0: only one right before each message)")
    parser.add_argument("--no-clock", action="store_true", help="do not publish /clock")
    parser.add_argument("--wait-for-subscribers", type=float, default=0.0, metavar="SECONDS",
                        help="wait up to SECONDS until every played topic has a subscriber before starting")


def large_data_note(plans: Mapping[str, TopicPlan]) -> str | None:
    """Advice when large messages may be lost by best-effort subscribers with the Fast DDS default transports."""
    large = [p.bag_topic for p in plans.values() if p.msgtype in LARGE_TYPES]
    if not large or os.environ.get("FASTDDS_DEFAULT_PROFILES_FILE"):
        return None
    return (f"note: {', '.join(large)} may carry messages over ~0.5 MB, which best-effort subscribers lose with the "
            "Fast DDS default transports; export FASTDDS_DEFAULT_PROFILES_FILE=<package>/config/fastdds_large_data.xml "
            "(see that file) before playing")


def run(args: argparse.Namespace) -> int:
    """Play the bag and print the summary; 0 also after Ctrl-C or SIGTERM, 1 for a bad bag or option."""
    try:
        options = PlayOptions(rate=args.rate, start_offset_s=args.start_offset, topics=args.topics,
                              remaps=parse_remaps(args.remap), loop=args.loop, clock=not args.no_clock,
                              clock_hz=args.clock_hz, wait_for_subscribers_s=args.wait_for_subscribers)
        player = Player(args.bag, options)
    except (InputError, ValueError, OSError) as error:
        return report("play", error)
    for topic, reason in player.skipped.items():
        print(f"skipping {topic}: {reason}", file=sys.stderr)
    note = large_data_note(player.plans)
    if note:
        print(note, file=sys.stderr)
    # Ctrl-C and SIGTERM only set the stop flag, which the loop checks at least every POLL_S. A KeyboardInterrupt
    # lands wherever the main thread is, inside rclpy's calls too, and the player then once hung on its way out.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: player.stop())
    print(f"playing {args.bag} ({len(player.plans)} topics) at rate {options.rate}", flush=True)
    print(player.play().format(), flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m diffusiondrive_ros.tools.player`, the same as `diffusiondrive-ros play`."""
    parser = argparse.ArgumentParser(description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
