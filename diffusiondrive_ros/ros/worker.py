"""Threads that keep only the newest pending frame, so pairing and inference never block subscriptions."""
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

    def submit(self, item: Any) -> Any | None:
        """Queue `item`; returns the older item it replaced (never handled), or None."""
        with self._condition:
            replaced, self._pending = self._pending, item
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


class SyncThenPlanWorker:
    """A pipeline of two LatestFrameWorkers: `prepare` (pair a cloud with its inputs, decode, build features) then
    `plan` (the model).

    Preparing runs as soon as a cloud arrives, while the planner is busy with an earlier frame: the frame's messages
    are taken from the buffers before their time window or byte budget drops them, and its decoding and features
    overlap the model's work on the frame before. Only the newest prepared frame waits for the planner.
    `on_drop(item)` is called for each item replaced while it waited at either stage (a cloud, or a prepared frame
    whose resources it may release).
    """

    def __init__(self, prepare: Callable[[Any], Any | None], plan: Callable[[Any], None],
                 on_error: Callable[[BaseException], None], on_drop: Callable[[Any], None],
                 name: str = "diffusiondrive"):
        self._prepare = prepare
        self._on_drop = on_drop
        self._planner = LatestFrameWorker(plan, on_error, name=f"{name}_plan")
        self._sync = LatestFrameWorker(self._prepare_and_pass, on_error, name=f"{name}_sync")

    def _prepare_and_pass(self, item: Any) -> None:
        prepared = self._prepare(item)
        if prepared is not None:
            replaced = self._planner.submit(prepared)
            if replaced is not None:
                self._on_drop(replaced)

    def submit(self, item: Any) -> None:
        """Queue a new cloud; one still waiting to be prepared is replaced and passed to `on_drop`."""
        replaced = self._sync.submit(item)
        if replaced is not None:
            self._on_drop(replaced)

    def stop(self, timeout: float = 10.0) -> None:
        self._sync.stop(timeout)
        self._planner.stop(timeout)
