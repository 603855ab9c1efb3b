"""Node end to end across processes (`bench --node`) and the soak run (`bench --soak MINUTES`).

Three processes, as on a vehicle: the sensor process (node_bench_sensors) sends three raw camera Images, a point
cloud, Odometry and Imu at the rate asked; the node runs as `diffusiondrive-ros node` with its topics remapped; this
process receives the Paths, matches each to its cloud by stamp and samples the node's RSS once a second. Latency is
from the cloud published to its Path received. The in-process plan time of the same frames (the node's own
pipeline code, no transport) is measured first as the baseline.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from . import node_bench_sensors as sensors
from .node_bench_report import MIB, format_summary, match_paths, summarize, summary_dict
from .tools.processes import interrupt

SOAK_RATE_HZ = 20.0
NODE_RATE_HZ = 10.0
LARGE_DATA_PROFILE = Path("config") / "fastdds_large_data.xml"
COUNTERS = ("clouds_received", "frames_planned", "frames_dropped_busy", "frames_skipped", "frames_failed",
            "latency_model_p50_s", "latency_end_to_end_from_receipt_p50_s")
"""Values of the node's planning diagnostics reported beside the figures (its own counts and timings, which
cover its last 200 frames, warm-up included)."""


@dataclass(frozen=True)
class NodeBenchConfig:
    """One run: the stream (rate, duration, camera size, cloud size), the node's model, and how it is measured:
    the first `warmup_s` are left out, the rest cut into windows of `window_s` (None: a third of it, at most 60 s).
    """

    duration_s: float = 20.0
    rate_hz: float = NODE_RATE_HZ
    warmup_s: float = 5.0
    window_s: float | None = None
    width: int = 1920
    height: int = 1080
    points: int = 120_000
    checkpoint: str = ""
    device: str = "auto"
    precision: str = "fp32"
    compile: str = ""
    baseline_frames: int = 5
    start_timeout_s: float = 300.0

    def __post_init__(self) -> None:
        if not 0 <= self.warmup_s < self.duration_s:
            raise ValueError(f"NodeBenchConfig.warmup_s: must be in [0, duration_s = {self.duration_s}), "
                             f"got {self.warmup_s}")
        if self.window_s is not None and not self.window_s > 0:
            raise ValueError(f"NodeBenchConfig.window_s: must be > 0 or None, got {self.window_s}")
        if self.baseline_frames < 1:
            raise ValueError(f"NodeBenchConfig.baseline_frames: must be >= 1, got {self.baseline_frames}")
        self.stream()  # checks rate, duration and the frame sizes

    @property
    def window(self) -> float:
        return self.window_s or min(60.0, (self.duration_s - self.warmup_s) / 3)

    def stream(self) -> sensors.StreamConfig:
        return sensors.StreamConfig(rate_hz=self.rate_hz, duration_s=self.duration_s, width=self.width,
                                    height=self.height, points=self.points)


def node_parameters(config: NodeBenchConfig) -> dict:
    """The node's parameters: its defaults, with the model asked for and the rig the sensor process simulates."""
    return {"checkpoint": config.checkpoint, "device": config.device, "precision": config.precision,
            "compile": config.compile, "camera_transport": "raw", "use_tf": False,
            "lidar_extrinsic": {"z": sensors.LIDAR_HEIGHT_M}}


def large_data_profile() -> Path | None:
    """The Fast DDS profile raw full-HD images need (config/fastdds_large_data.xml): the one already exported, else
    the package's, from a checkout or an installed share/ folder; None when none is found."""
    if os.environ.get("FASTDDS_DEFAULT_PROFILES_FILE"):
        return Path(os.environ["FASTDDS_DEFAULT_PROFILES_FILE"])
    for root in (Path(__file__).resolve().parents[1], Path(sys.prefix) / "share" / "diffusiondrive_ros"):
        if (root / LARGE_DATA_PROFILE).is_file():
            return root / LARGE_DATA_PROFILE
    return None


def child_env() -> dict[str, str]:
    """Environment of the node and sensor processes: this one's (ROS_DOMAIN_ID included), discovery on this host
    unless set, and the large-data profile."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    profile = large_data_profile()
    if profile:
        env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(profile)
    else:
        print("note: config/fastdds_large_data.xml not found: raw full-HD Images may be lost by best-effort "
              "subscribers with the Fast DDS defaults", file=sys.stderr)
    return env


def in_process_plan_times(params_file: Path, config: NodeBenchConfig) -> list[float]:
    """Seconds the node's pipeline (decode + features + model, no transport) takes for frames the sensor process
    sends, planned in this process with the node's parameters; one frame first as a warm-up.

    The model loads on this thread and plans on another one, as in the node (model loaded by the main thread,
    planning thread apart): on a 2-core CPU under load, torch planning on the thread that loaded it ran 10-20x
    slower than on a separate thread, which would make the baseline meaningless.
    """
    from .ros.params import load_params_file, pipeline_config, planner_from_parameters
    from .ros.pipeline import FramePipeline

    p = load_params_file(params_file)
    pipeline = FramePipeline(planner_from_parameters(p), pipeline_config(p))
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="baseline_planning") as planning:
        return planning.submit(_plan_frames, pipeline, config).result()


def _plan_frames(pipeline, config: NodeBenchConfig) -> list[float]:
    """Feed the pipeline the sensor process's frames the way the node's subscriptions do, plan each, time it."""
    from .ros.conversions import ns_to_stamp

    stream, start_ns, times = config.stream(), time.time_ns(), []
    for i in range(config.baseline_frames + 1):
        stamp_ns = start_ns + round(i * 1e9 / config.rate_hz)
        cameras, cloud = sensors.frame_messages(stream, i % stream.variants)
        for msg in (*cameras, cloud):
            msg.header.stamp = ns_to_stamp(stamp_ns)
        for offset_ns in (-10**8, 0):  # odometry 0.1 s apart, as the acceleration window needs
            odometry, imu = sensors.motion_messages(stamp_ns + offset_ns, start_ns)
            pipeline.sync.add_odometry(odometry)
            pipeline.sync.add_imu(imu)
        for index, msg in enumerate(cameras):
            pipeline.sync.add_camera(index, msg)
        pipeline.sync.add_cloud(cloud)
        begin = time.perf_counter()
        pipeline.plan(pipeline.assemble(cloud))
        times.append(time.perf_counter() - begin)
    return times[1:]


def rss_bytes(pid: int, field: str = "VmRSS") -> int | None:
    """A memory figure of a process from /proc/PID/status (VmRSS now, VmHWM peak), bytes; None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
    except OSError:  # the process has exited between two samples
        return None
    return None


def gpu_memory_mib(pid: int) -> float | None:
    """GPU memory the process holds (nvidia-smi), MiB; None without nvidia-smi or without a GPU context."""
    if not shutil.which("nvidia-smi"):
        return None
    out = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                         capture_output=True, text=True, timeout=10).stdout
    used = [float(mib) for owner, mib in (line.split(",") for line in out.splitlines() if "," in line)
            if int(owner) == pid]
    return sum(used) if used else None


class PathListener:
    """This process's rclpy node (own context): records (stamp ns, receipt ns) of every Path and keeps the node's
    latest planning counters from its /diagnostics."""

    def __init__(self, prefix: str):
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from nav_msgs.msg import Path as PathMsg
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile

        self.context = Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("diffusiondrive_bench_listener", context=self.context)
        self.lock = threading.Lock()
        self.paths: list[tuple[int, int]] = []
        self.counters: dict[str, str] = {}
        self.model_p50_ms: list[tuple[int, float]] = []  # (receipt ns, the node's model p50 over its last frames)
        keep = QoSProfile(depth=100)  # reliable and deep, so this process loses no Path while it is busy
        self.node.create_subscription(PathMsg, f"{prefix}/path", self._on_path, keep)
        self.node.create_subscription(DiagnosticArray, f"{prefix}/diagnostics", self._on_diagnostics, keep)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def _on_path(self, msg) -> None:
        received = time.time_ns()
        with self.lock:
            self.paths.append((msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec, received))

    def _on_diagnostics(self, msg) -> None:
        for status in msg.status:
            if status.name.endswith(": planning"):
                values = {kv.key: kv.value for kv in status.values}
                with self.lock:
                    self.counters = {key: values[key] for key in COUNTERS if key in values}
                    if "latency_model_p50_s" in values:
                        self.model_p50_ms.append((time.time_ns(), 1e3 * float(values["latency_model_p50_s"])))

    def snapshot(self) -> tuple[list[tuple[int, int]], dict[str, str], list[tuple[int, float]]]:
        with self.lock:
            return list(self.paths), dict(self.counters), list(self.model_p50_ms)

    def close(self) -> None:
        import rclpy

        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
        self.thread.join(5)


class Run:
    """The three processes of one benchmark run and what this process samples while they run."""

    def __init__(self, config: NodeBenchConfig, workdir: Path):
        from .ros.params import write_params_file  # here, so that the in-process benchmarks run without ROS 2

        self.config, self.workdir = config, workdir
        self.prefix = f"/diffusiondrive_bench_{os.getpid()}"
        self.params_file = write_params_file(workdir / "params.yaml", node_parameters(config))
        self.record = workdir / "clouds.txt"
        self.rss: list[tuple[int, int]] = []
        self.load: list[tuple[int, float]] = []  # 1-minute load average of the machine, sampled with the RSS
        self.gpu_peak_mib: float | None = None

    def _remaps(self) -> list[str]:
        names = {f"~/input/{name}": f"{self.prefix}/{name}" for name in sensors.INPUTS}
        names |= {f"~/output/{name}": f"{self.prefix}/{name}" for name in ("path", "candidates")}
        names["/diagnostics"] = f"{self.prefix}/diagnostics"
        return [arg for source, target in names.items() for arg in ("-r", f"{source}:={target}")]

    def _start(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen:
        with (self.workdir / f"{name}.log").open("w") as log:  # the child keeps its own copy of the descriptor
            return subprocess.Popen([sys.executable, "-m", *args], env=env, stdout=log, stderr=subprocess.STDOUT)

    def log_tail(self, name: str, chars: int = 3000) -> str:
        return (self.workdir / f"{name}.log").read_text()[-chars:]

    def sample(self, pid: int) -> None:
        rss, now = rss_bytes(pid), time.time_ns()
        self.load.append((now, os.getloadavg()[0]))
        if rss is not None:
            self.rss.append((now, rss))
        if self.config.device != "cpu":
            gpu = gpu_memory_mib(pid)
            if gpu is not None:
                self.gpu_peak_mib = max(gpu, self.gpu_peak_mib or 0.0)

    def execute(self, listener: PathListener) -> tuple[subprocess.Popen, dict]:
        """Run node and sensor processes until the stream has ended and the last Paths are in; the node process
        (still running) and what was observed."""
        env, stream = child_env(), self.config.stream()
        node = self._start("node", ["diffusiondrive_ros.cli", "node", "--ros-args", "--params-file",
                                    str(self.params_file), *self._remaps()], env)
        publisher = self._start("sensors", [
            "diffusiondrive_ros.node_bench_sensors", "--topics", self.prefix, "--record", str(self.record),
            "--rate", str(stream.rate_hz), "--duration", str(stream.duration_s), "--width", str(stream.width),
            "--height", str(stream.height), "--points", str(stream.points)], env)
        try:
            self._wait_for_stream(node, publisher)
            load_start, stream_start = os.getloadavg()[0], time.monotonic()
            next_report = self.config.window
            while publisher.poll() is None:
                self._check_alive(node)
                self.sample(node.pid)
                elapsed = time.monotonic() - stream_start
                if elapsed >= next_report and self.rss:
                    next_report += self.config.window
                    print(f"  {elapsed:5.0f} s: {len(listener.snapshot()[0])} Paths, node RSS "
                          f"{self.rss[-1][1] / MIB:.0f} MiB", file=sys.stderr, flush=True)
                time.sleep(1.0)
            if publisher.returncode != 0:
                raise RuntimeError(f"sensor process exited with {publisher.returncode}: {self.log_tail('sensors')}")
            self._drain(node, listener)
            # the kernel updates VmHWM lazily, so a sample may exceed it
            peak = max([rss_bytes(node.pid, "VmHWM") or 0, *(b for _, b in self.rss)])
            return node, {"load_average": [load_start, os.getloadavg()[0]], "node_peak_rss_mib": peak / MIB}
        except BaseException:  # a failed or interrupted run (Ctrl-C included) must not leave its processes behind
            interrupt(publisher)
            interrupt(node)
            raise

    def _check_alive(self, node: subprocess.Popen) -> None:
        if node.poll() is not None:
            raise RuntimeError(f"node exited with {node.returncode}: {self.log_tail('node')}")

    def _wait_for_stream(self, node: subprocess.Popen, publisher: subprocess.Popen) -> None:
        """Until the sensor process starts streaming (the node has subscribed: its model is loaded)."""
        deadline = time.monotonic() + self.config.start_timeout_s
        while sensors.START_LINE not in (self.workdir / "sensors.log").read_text():
            self._check_alive(node)
            if publisher.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the stream did not start: {self.log_tail('sensors')}\n{self.log_tail('node')}")
            self.sample(node.pid)
            time.sleep(0.2)

    def _drain(self, node: subprocess.Popen, listener: PathListener) -> None:
        """Wait for Paths still being planned, until none has come for a few seconds (the node's diagnostics, once a
        second, then hold its final counters)."""
        quiet_s, last_count, last_change = 5.0, -1, time.monotonic()
        while time.monotonic() - last_change < quiet_s:
            self._check_alive(node)
            self.sample(node.pid)
            count = len(listener.snapshot()[0])
            if count != last_count:
                last_count, last_change = count, time.monotonic()
            time.sleep(0.5)


def read_record(path: Path) -> list[tuple[int, int]]:
    """(stamp ns, publish ns) of every cloud the sensor process sent."""
    return [(int(a), int(b)) for a, b in (line.split() for line in path.read_text().splitlines() if line.strip())]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("node end to end across processes (--node) and soak (--soak)")
    group.add_argument("--node", action="store_true",
                       help=f"time the node from cloud published to Path received, {NODE_RATE_HZ:g} Hz by default")
    group.add_argument("--soak", "--soak-minutes", type=float, metavar="MINUTES",
                       help=f"the same for MINUTES at {SOAK_RATE_HZ:g} Hz: RSS and latency over time")
    group.add_argument("--duration", type=float, default=NodeBenchConfig.duration_s,
                       help="seconds of input for --node")
    group.add_argument("--rate", type=float, help="frames per second (default: 10 for --node, 20 for --soak)")
    group.add_argument("--warmup", type=float, default=NodeBenchConfig.warmup_s,
                       help="seconds at the start left out of the figures")
    group.add_argument("--window", type=float, help="seconds per time window (default: a third of the measured "
                                                    "time, at most 60)")
    group.add_argument("--camera-size", default="1920x1080", metavar="WxH", help="raw rgb8 camera image size")
    group.add_argument("--points", type=int, default=NodeBenchConfig.points, help="points per cloud")
    group.add_argument("--checkpoint", default="", help="node checkpoint parameter ('' built-in, 'seeded' = "
                                                        "seeded weights of the official NAVSIM configuration)")
    group.add_argument("--precision", default="fp32", help="node precision parameter: fp32, fp16 or bf16")
    group.add_argument("--compile", default="", metavar="MODE",
                       help="compile mode: '' off, default, reduce-overhead (CUDA graphs), max-autotune; the node's "
                            "parameter with --node, else a row of the reference plan compiled against eager")
    group.add_argument("--baseline-frames", type=int, default=NodeBenchConfig.baseline_frames,
                       help="frames planned in-process for the baseline")
    group.add_argument("--json", type=Path, metavar="FILE", help="also write the figures to FILE as JSON")


def wanted(args: argparse.Namespace) -> bool:
    """Whether the bench command line asks for this benchmark."""
    return args.node or args.soak is not None


def config_from_args(args: argparse.Namespace) -> NodeBenchConfig:
    width, _, height = args.camera_size.partition("x")
    if not (width.isdigit() and height.isdigit()):
        raise ValueError(f"--camera-size: expected WIDTHxHEIGHT like 1920x1080, got {args.camera_size!r}")
    soak = args.soak is not None
    return NodeBenchConfig(
        duration_s=args.soak * 60 if soak else args.duration,
        rate_hz=args.rate or (SOAK_RATE_HZ if soak else NODE_RATE_HZ), warmup_s=args.warmup, window_s=args.window,
        width=int(width), height=int(height), points=args.points, checkpoint=args.checkpoint, device=args.device,
        precision=args.precision, compile=args.compile, baseline_frames=args.baseline_frames)


def describe(config: NodeBenchConfig, extra: dict) -> str:
    model = {"": "built-in model", "seeded": "seeded NAVSIM model"}.get(config.checkpoint, config.checkpoint)
    load = extra["load_average"]
    return (f"node across processes: {config.rate_hz:g} Hz, 3 x {config.width}x{config.height} rgb8 Image + "
            f"{config.points} points, {model} on {config.device} {config.precision}; {config.duration_s:g} s, first "
            f"{config.warmup_s:g} s left out; load average {load[0]:.1f} -> {load[1]:.1f} on {os.cpu_count()} CPUs")


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    with tempfile.TemporaryDirectory(prefix="diffusiondrive_bench_") as tmp:
        bench = Run(config, Path(tmp))
        baseline = in_process_plan_times(bench.params_file, config)
        listener = PathListener(bench.prefix)
        try:
            node, extra = bench.execute(listener)
            paths, counters, model_p50_ms = listener.snapshot()
            code = interrupt(node)
        except RuntimeError as error:  # a process that died or never started streaming: say which and why
            print(f"bench: {error}", file=sys.stderr)
            return 1
        finally:
            listener.close()
        if code != 0:
            print(f"node exited with {code} on SIGINT: {bench.log_tail('node')}", file=sys.stderr)
        clouds = read_record(bench.record)
    if not clouds:
        print("bench: the sensor process sent no frame", file=sys.stderr)
        return 1
    records, unmatched = match_paths(clouds, paths)
    receipt_to_publish = counters.get("latency_end_to_end_from_receipt_p50_s")
    summary = summarize(records, bench.rss, clouds[0][1], config.warmup_s, config.duration_s, config.window,
                        baseline, unmatched, None if receipt_to_publish is None else 1e3 * float(receipt_to_publish),
                        context={"model[ms]": model_p50_ms, "load avg": bench.load})
    extra |= {"gpu_peak_mib": bench.gpu_peak_mib, "node_counters": counters, "clouds_sent": len(clouds)}
    print(describe(config, extra))
    print(format_summary(summary))
    gpu = "n/a" if bench.gpu_peak_mib is None else f"{bench.gpu_peak_mib:.0f} MiB"
    print(f"node peak RSS {extra['node_peak_rss_mib']:.0f} MiB, GPU memory peak {gpu}; clouds sent {len(clouds)} "
          "in all; node counters: " + ", ".join(f"{k} {v}" for k, v in counters.items()))
    if args.json:
        args.json.write_text(json.dumps({"config": asdict(config), **extra, "summary": summary_dict(summary)},
                                        indent=2))
    return 0 if code == 0 else 1
