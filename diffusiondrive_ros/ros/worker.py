"""A planning thread that keeps only the newest pending frame, so inference never blocks subscriptions."""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


class LatestFrameWorker:
    """Runs `handler(item)` on a background thread; a new item replaces one still waiting (counted by the caller).

    An exception from the handler is passed to `on_error` and the thread goes on with the next item.
    """

    def __init__(self, handler: Callable[[Any], None], on_error: Callable[[BaseException], None],
                 name: str = "diffusiondrive_worker"):
        self._handler = handler
        self._on_error = on_error
        self._pending: Any | None = None
        self._condition = threading.Condition()
        self._running = True
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(self, item: Any) -> bool:
        """Queue `item`; returns True when it replaced an older frame that was never planned."""
        with self._condition:
            replaced = self._pending is not None
            self._pending = item
            self._condition.notify()
        return replaced

    def _loop(self) -> None:
        while True:
            with self._condition:
                while self._running and self._pending is None:
                    self._condition.wait()
                if not self._running:
                    return
                item, self._pending = self._pending, None
            try:
                self._handler(item)
            except Exception as error:  # the planning thread must outlive any single frame
                self._on_error(error)

    def stop(self, timeout: float = 10.0) -> None:
        with self._condition:
            self._running = False
            self._condition.notify()
        self._thread.join(timeout)
