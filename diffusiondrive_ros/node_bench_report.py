"""Figures of the node benchmark from what it recorded: clouds sent, Paths received, node RSS samples.

Pure functions (no ROS), so the statistics are tested on hand-made records. Latency is Path receipt minus the
moment its cloud was published; a cloud with no Path was dropped (the node plans the newest frame only when busy).
Figures that have a baseline are also given as a ratio to it: end-to-end latency against the in-process plan time
of the same frames, and the last time window against the first (near 1 = no memory growth, no latency creep).
"""
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

MIB = 2**20


@dataclass(frozen=True)
class CloudRecord:
    """One published cloud: its stamp, when it was published and when its Path arrived (None: dropped), ns."""

    stamp_ns: int
    published_ns: int
    received_ns: int | None = None

    @property
    def latency_s(self) -> float | None:
        return None if self.received_ns is None else (self.received_ns - self.published_ns) / 1e9


@dataclass(frozen=True)
class Percentiles:
    """p50 and p99 (numpy linear interpolation) of `count` values, milliseconds; None without values."""

    p50_ms: float | None
    p99_ms: float | None
    count: int

    @classmethod
    def of_seconds(cls, values: Sequence[float]) -> "Percentiles":
        if not len(values):
            return cls(None, None, 0)
        p50, p99 = np.percentile(np.asarray(values, dtype=float) * 1e3, (50, 99))
        return cls(float(p50), float(p99), len(values))


@dataclass(frozen=True)
class WindowStats:
    """Clouds published in [start_s, end_s) of the stream: how many, how many got a Path, their latency, the node's
    median RSS over the window and the median of each context series (None without samples)."""

    start_s: float
    end_s: float
    clouds: int
    planned: int
    latency: Percentiles
    rss_mib: float | None
    context: dict[str, float | None] = field(default_factory=dict)


@dataclass(frozen=True)
class Summary:
    """Everything the benchmark reports about the measured part of the stream (after the warm-up)."""

    measured_s: float
    clouds: int
    planned: int
    unmatched_paths: int
    latency: Percentiles
    baseline: Percentiles
    rss_first_mib: float | None
    rss_last_mib: float | None
    rss_peak_mib: float | None
    windows: list[WindowStats] = field(default_factory=list)
    node_receipt_to_publish_p50_ms: float | None = None
    """The node's own p50 from cloud receipt to Path publish (its diagnostics, last 200 frames), if reported."""

    @property
    def planned_hz(self) -> float:
        return self.planned / self.measured_s

    @property
    def published_hz(self) -> float:
        return self.clouds / self.measured_s

    @property
    def dropped_fraction(self) -> float | None:
        return None if not self.clouds else 1.0 - self.planned / self.clouds

    def latency_ratios(self) -> dict[str, float | None]:
        """End-to-end p50 and p99 over the in-process plan time's (> 1: time added by transport and queueing)."""
        return {"p50": ratio(self.latency.p50_ms, self.baseline.p50_ms),
                "p99": ratio(self.latency.p99_ms, self.baseline.p99_ms),
                "p50_over_node_receipt_to_publish": ratio(self.latency.p50_ms, self.node_receipt_to_publish_p50_ms)}

    def drift_ratios(self) -> dict[str, float | None]:
        """Last window over first window (with data) for RSS, latency p50/p99 and each context series: near 1 = no
        growth, no creep (a context series such as the CPU load tells whether a change came from outside)."""
        series = {"rss": [w.rss_mib for w in self.windows], "p50": [w.latency.p50_ms for w in self.windows],
                  "p99": [w.latency.p99_ms for w in self.windows]}
        series |= {name: [w.context.get(name) for w in self.windows] for name in self.windows[0].context}
        return {name: _last_over_first([v for v in values if v is not None]) for name, values in series.items()}


def ratio(value: float | None, baseline: float | None) -> float | None:
    return None if value is None or not baseline else value / baseline


def _last_over_first(values: Sequence[float]) -> float | None:
    return ratio(values[-1], values[0]) if len(values) > 1 else None


def _median(values: Sequence[float]) -> float | None:
    return float(np.median(values)) if len(values) else None


def match_paths(clouds: Iterable[tuple[int, int]], paths: Iterable[tuple[int, int]]) -> tuple[list[CloudRecord], int]:
    """Pair each published cloud (stamp, published) with the Path (stamp, received) of the same stamp; the records
    in publishing order, and how many Paths matched no cloud (the first receipt of a stamp counts)."""
    received: dict[int, int] = {}
    for stamp, at in paths:
        received.setdefault(stamp, at)
    records = [CloudRecord(stamp, published, received.pop(stamp, None)) for stamp, published in clouds]
    return records, len(received)


def window_edges(start_s: float, end_s: float, window_s: float) -> list[tuple[float, float]]:
    """[start, end) cut into windows of window_s; the last one ends at end_s and may be shorter."""
    count = max(1, int(np.ceil((end_s - start_s) / window_s - 1e-9)))
    return [(start_s + k * window_s, min(start_s + (k + 1) * window_s, end_s)) for k in range(count)]


def summarize(records: Sequence[CloudRecord], rss: Sequence[tuple[int, int]], origin_ns: int, warmup_s: float,
              duration_s: float, window_s: float, baseline_s: Sequence[float], unmatched_paths: int = 0,
              node_receipt_to_publish_p50_ms: float | None = None,
              context: Mapping[str, Sequence[tuple[int, float]]] | None = None) -> Summary:
    """Figures of the clouds published from `warmup_s` to `duration_s` after `origin_ns` (the first frame), with
    RSS samples (time ns, bytes) in the same span, split into windows of `window_s`; each `context` series (time
    ns, value), e.g. the load average, is summarised per window by its median."""
    def seconds(ns: int) -> float:
        return (ns - origin_ns) / 1e9

    measured = [r for r in records if warmup_s <= seconds(r.published_ns) < duration_s]
    samples = [(seconds(t), b / MIB) for t, b in rss if seconds(t) >= warmup_s]
    windows = []
    for start, end in window_edges(warmup_s, duration_s, window_s):
        inside = [r for r in measured if start <= seconds(r.published_ns) < end]
        latencies = [r.latency_s for r in inside if r.latency_s is not None]
        memory = [mib for t, mib in samples if start <= t < end]
        medians = {name: _median([v for t, v in values if start <= seconds(t) < end])
                   for name, values in (context or {}).items()}
        windows.append(WindowStats(start, end, len(inside), len(latencies), Percentiles.of_seconds(latencies),
                                   _median(memory), medians))
    latencies = [r.latency_s for r in measured if r.latency_s is not None]
    in_stream = [mib for t, mib in samples if t < duration_s]
    all_mib = [b / MIB for _, b in rss]
    return Summary(
        measured_s=duration_s - warmup_s, clouds=len(measured), planned=len(latencies), unmatched_paths=unmatched_paths,
        latency=Percentiles.of_seconds(latencies), baseline=Percentiles.of_seconds(baseline_s),
        rss_first_mib=in_stream[0] if in_stream else None, rss_last_mib=in_stream[-1] if in_stream else None,
        rss_peak_mib=max(all_mib) if all_mib else None, windows=windows,
        node_receipt_to_publish_p50_ms=node_receipt_to_publish_p50_ms)


def _number(value: float | None, digits: int = 1, suffix: str = "") -> str:
    return "n/a" if value is None else f"{value:.{digits}f}{suffix}"


def format_summary(summary: Summary) -> str:
    """The figures as a text table: overall latency and RSS against their baselines, then one row per window."""
    ratios, drift = summary.latency_ratios(), summary.drift_ratios()
    dropped = summary.dropped_fraction
    rows = [
        ("end to end p50 [ms] vs in-process plan", summary.latency.p50_ms, summary.baseline.p50_ms, ratios["p50"]),
        ("end to end p99 [ms] vs in-process plan", summary.latency.p99_ms, summary.baseline.p99_ms, ratios["p99"]),
        ("end to end p50 [ms] vs node receipt-to-publish", summary.latency.p50_ms,
         summary.node_receipt_to_publish_p50_ms, ratios["p50_over_node_receipt_to_publish"]),
        ("node RSS [MiB], last vs first", summary.rss_last_mib, summary.rss_first_mib,
         ratio(summary.rss_last_mib, summary.rss_first_mib)),
        ("planned [frames/s] vs published", summary.planned_hz, summary.published_hz,
         ratio(summary.planned_hz, summary.published_hz)),
    ]
    width = max(len(name) for name, *_ in rows)
    lines = [f"{'case':{width}}  {'ours':>9}  {'baseline':>9}  {'ratio':>7}"]
    lines += [f"{name:{width}}  {_number(ours):>9}  {_number(base):>9}  {_number(r, 2, 'x'):>7}"
              for name, ours, base, r in rows]
    lines.append(f"clouds {summary.clouds}, planned {summary.planned} ({summary.latency.count} timed), dropped "
                 f"{_number(None if dropped is None else 100 * dropped, 1, ' %')}, Paths matching no cloud "
                 f"{summary.unmatched_paths}; RSS peak {_number(summary.rss_peak_mib)} MiB; in-process baseline over "
                 f"{summary.baseline.count} frames")
    lines.append("")
    names = list(summary.windows[0].context) if summary.windows else []
    lines.append(f"{'window [s]':>13}  {'clouds':>6}  {'planned':>7}  {'dropped':>7}  {'p50 [ms]':>9}  "
                 f"{'p99 [ms]':>9}  {'RSS [MiB]':>9}" + "".join(f"  {name:>9}" for name in names))
    for w in summary.windows:
        lost = None if not w.clouds else 100 * (1 - w.planned / w.clouds)
        span = f"{w.start_s:.0f}-{w.end_s:.0f}"
        lines.append(f"{span:>13}  {w.clouds:6d}  {w.planned:7d}  {_number(lost, 1, ' %'):>7}"
                     f"  {_number(w.latency.p50_ms):>9}  {_number(w.latency.p99_ms):>9}  {_number(w.rss_mib):>9}"
                     + "".join(f"  {_number(w.context[name]):>9}" for name in names))
    lines.append("last vs first window: " + ", ".join(f"{name} {_number(r, 2, 'x')}" for name, r in drift.items()))
    return "\n".join(lines)


def summary_dict(summary: Summary) -> dict:
    """The figures as plain JSON values, with the derived rates and ratios."""
    return asdict(summary) | {"planned_hz": summary.planned_hz, "published_hz": summary.published_hz,
                              "dropped_fraction": summary.dropped_fraction,
                              "latency_over_baseline": summary.latency_ratios(),
                              "last_over_first_window": summary.drift_ratios()}
