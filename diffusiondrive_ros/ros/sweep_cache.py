"""The base-frame points of recently decoded clouds, so the LiDAR history decodes no cloud twice.

A cloud decoded as one frame's current sweep is an earlier sweep of the frames that follow (0.5 s later for a
two-sweep model); keeping its points for the history's span saves decoding and transforming it again.
"""
from __future__ import annotations

import threading
from typing import Any

import numpy as np


class SweepCache:
    """Points by cloud stamp, each kept with its message (a hit must be that very message, not only its stamp),
    for `span_s` behind the newest stamp; a span of 0 keeps nothing. The points are made read-only, since later
    frames share them."""

    def __init__(self, span_s: float):
        self.span_ns = round(span_s * 1e9)
        self._entries: dict[int, tuple[Any, np.ndarray]] = {}
        self._lock = threading.Lock()

    def get(self, cloud: Any, stamp_ns: int) -> np.ndarray | None:
        with self._lock:
            entry = self._entries.get(stamp_ns)
        return entry[1] if entry is not None and entry[0] is cloud else None

    def put(self, cloud: Any, stamp_ns: int, points: np.ndarray) -> None:
        if not self.span_ns:
            return
        points.flags.writeable = False
        with self._lock:
            self._entries[stamp_ns] = (cloud, points)
            oldest = max(self._entries) - self.span_ns
            self._entries = {stamp: entry for stamp, entry in self._entries.items() if stamp >= oldest}

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
