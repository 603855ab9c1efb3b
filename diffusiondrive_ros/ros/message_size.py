"""Payload size of sensor messages from their header fields, checked before any numpy copy of the data.

A malformed or hostile message can declare (or carry) gigabytes; the node refuses it by these numbers alone,
and the synchroniser's buffers count their memory with them.
"""
from __future__ import annotations

from typing import Any

SMALL_MESSAGE_BYTES = 1024
"""What a message without a data array (Odometry, Imu) is counted as in a buffer."""


def payload_bytes(msg: Any) -> int:
    """The largest of the bytes a message's fields declare (Image: step*height; PointCloud2: row_step*height and
    width*height*point_step) and the bytes its data array holds; SMALL_MESSAGE_BYTES for messages without data.
    """
    data = getattr(msg, "data", None)
    if data is None:
        return SMALL_MESSAGE_BYTES
    declared = [len(data)]
    if hasattr(msg, "row_step"):  # PointCloud2
        declared += [int(msg.row_step) * int(msg.height), int(msg.width) * int(msg.height) * int(msg.point_step)]
    elif hasattr(msg, "step"):  # Image
        declared.append(int(msg.step) * int(msg.height))
    return max(declared)


def oversize(msg: Any, max_bytes: int) -> str | None:
    """Why `msg` is larger than `max_bytes` (declared or carried), or None when it fits."""
    size = payload_bytes(msg)
    if size <= max_bytes:
        return None
    return f"{size / 2**20:.1f} MB payload (declared by its size fields or carried) exceeds {max_bytes / 2**20:.1f} MB"
