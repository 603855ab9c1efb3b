"""The driving-command input: two subscriptions on one topic, so a publisher of any reliability and durability
connects and a latched command published before the node started still arrives.

A subscription gets the latched (transient-local) sample of a publisher only when it is itself reliable and
transient-local, but such a subscription does not match a best-effort or volatile publisher (a subscription may
not ask for more than a publisher offers). A best-effort, volatile subscription matches every publisher. The node
therefore subscribes with both into one handler. A publisher both match delivers each message twice; per
publisher (its GID) only a publication sequence number newer than the last one passed goes on, so each command is
handled once and a late duplicate never brings an older command back.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rclpy.subscription import MessageInfo
from std_msgs.msg import UInt8

LATCHED_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
"""Receives the command a latched publisher sent before this node started (reliable transient-local publishers)."""
ANY_PUBLISHER_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT,
                               durability=DurabilityPolicy.VOLATILE)
"""Matches every publisher, best-effort and volatile ones included."""


class NewestPerPublisher:
    """Passes each publisher's messages once and in publication order (by GID and sequence number, else source
    timestamp); remembers the `max_publishers` most recent publishers.
    """

    def __init__(self, max_publishers: int = 64):
        self._max_publishers = max_publishers
        self._last: OrderedDict[bytes, int] = OrderedDict()
        self._lock = threading.Lock()

    def is_new(self, info: MessageInfo) -> bool:
        gid = info.get("publisher_gid")
        if not gid:  # an RMW without publisher GIDs: nothing to tell duplicates apart by, so every message passes
            return True
        order = info.get("publication_sequence_number")
        order = info["source_timestamp"] if order is None else order
        key = bytes(gid["data"])
        with self._lock:
            if key in self._last and order <= self._last[key]:
                return False
            self._last[key] = order
            self._last.move_to_end(key)
            if len(self._last) > self._max_publishers:
                self._last.popitem(last=False)
        return True


class CommandInput:
    """`callback(msg)` once for every new command on `topic` from any publisher QoS (see the module docstring)."""

    def __init__(self, node: Node, topic: str, callback: Callable[[UInt8], None]):
        self._callback = callback
        self._filter = NewestPerPublisher()
        # best-effort and volatile publishers are incompatible with this one by design (the other subscription takes
        # them), so rclpy's default "incompatible QoS, no messages will be received" warning would mislead
        quiet = SubscriptionEventCallbacks(incompatible_qos=lambda _event: None)
        self._latched = node.create_subscription(UInt8, topic, self._on_message, LATCHED_QOS, event_callbacks=quiet)
        self._any = node.create_subscription(UInt8, topic, self._on_message, ANY_PUBLISHER_QOS)

    def _on_message(self, msg: UInt8, info: MessageInfo) -> None:
        if self._filter.is_new(info):
            self._callback(msg)

    def publisher_count(self) -> int:
        """Command publishers matched now (the best-effort volatile subscription matches every one)."""
        return self._any.get_publisher_count()
