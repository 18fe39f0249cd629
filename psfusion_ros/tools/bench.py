"""``psfusion-bench``: how fast, measured the same way every time; results as tables, JSON and plots.

* ``backends``: the network alone, every available backend x precision (eager, torch.compile, AOTInductor,
  TensorRT, ONNX Runtime) in one process, in interleaved rounds so that drift hits all alike; warm-up excluded;
  median/p95/min, pairs/s, memory, and speed-up and accuracy (fused PSNR, mask agreement) against eager fp32 from
  the same run.
* ``pipeline``: everything the node does for one pair with the chosen backend, per stage (decode, sync, thermal,
  register, resize, network, colour, argmax, resize back, encode, publish).
* ``stages``: the same, with one real network output replayed, so the figures are everything but the network.
* ``soak``: the live node for a long run at a fixed rate; resident memory over time (flat or not).
* ``monitor``: what the live registration check costs the inference worker (monitor on/off, interleaved).
* ``registration``: automatic thermal → RGB registration against OpenCV ECC, SIFT + RANSAC and SimpleITK on
  seeded rig warps of real aligned pairs (:mod:`psfusion_ros.tools.registration_bench`).

Machines like this one swing 2-3x from run to run: compare within one run, never across runs.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from psfusion_ros.cli import existing_file, run_cli
from psfusion_ros.errors import ConfigError
from psfusion_ros.harness.synthetic import misalignment_homography, synthetic_frame, thermal_counts
from psfusion_ros.io.json_files import dumps, write_json
from psfusion_ros.pipeline.builder import UNTRAINED_SEED, build_pipeline, load_model
from psfusion_ros.pipeline.config import PipelineConfig
from psfusion_ros.pipeline.engines.base import InferenceOutput, resolve_device
from psfusion_ros.pipeline.parameters import DEFAULTS, DEVICES, PRECISIONS
from psfusion_ros.pipeline.resize import parse_size
from psfusion_ros.pipeline.sync import ApproximateTimeSync
from psfusion_ros.tools import precision_study, registration_baselines, registration_bench
from psfusion_ros.tools.backend_timing import BENCH_BACKENDS, print_backends, run_backends

NETWORK_STAGES = ("inference", "argmax")


class RecordingEngine:
    """Runs the real engine once and keeps its output for :class:`ReplayEngine`."""

    def __init__(self, engine: Any) -> None:
        self.engine, self.output = engine, None
        self.device, self.precision, self.num_classes = engine.device, engine.precision, engine.num_classes

    def __call__(self, vi: torch.Tensor, ir: torch.Tensor) -> InferenceOutput:
        self.output = self.engine(vi, ir)
        return self.output


class ReplayEngine:
    """Returns one real network output again and again: the stage benchmark times everything else."""

    name = "replay"

    def __init__(self, engine: Any, output: InferenceOutput) -> None:
        self.device, self.precision, self.num_classes = engine.device, engine.precision, engine.num_classes
        self.output = output

    def __call__(self, vi: torch.Tensor, ir: torch.Tensor) -> InferenceOutput:
        return self.output


def _summary(samples: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    return {k: {"p50": float(np.median(v)), "p95": float(np.percentile(v, 95)), "mean": float(np.mean(v))}
            for k, v in samples.items()}


def _bench_config(args: argparse.Namespace, net_size: tuple[int, int], homography: np.ndarray) -> PipelineConfig:
    config = PipelineConfig(allow_untrained=True, network_size=net_size).with_params({
        "device": getattr(args, "device", "cpu"), "backend": getattr(args, "backend", "eager"),
        "precision": getattr(args, "precision", "fp32"), "engine_path": getattr(args, "engine_path", None) or "",
        "registration.mode": args.registration, "registration.homography": [float(v) for v in homography.ravel()]})
    return config.with_params({"checkpoint": args.checkpoint}) if getattr(args, "checkpoint", None) else config


def bench_stages(args: argparse.Namespace, replay: bool = True) -> dict[str, Any]:
    """Per-stage cost of one pair on real Image messages; ``replay``: the network's output is replayed."""
    import rclpy
    from rclpy.node import Node
    from sensor_msgs.msg import Image

    from psfusion_ros.harness.node_process import private_ros_env
    from psfusion_ros.io.image_codec import decode_rgb, decode_thermal, fill_image
    from psfusion_ros.pipeline.color import colorize

    rgb_size, thermal_size = parse_size(args.size, network=False), parse_size(args.thermal_size, network=False)
    net_size = parse_size(args.network_size)
    H = misalignment_homography(rgb_size, thermal_size)
    scene = synthetic_frame(0, *rgb_size)
    rgb_msg = fill_image(Image(), scene.visible, "rgb8")
    thermal_msg = fill_image(Image(), thermal_counts(scene, thermal_size, H), "mono16")
    pipeline = build_pipeline(_bench_config(args, net_size, H))
    real_ms = None
    if replay:
        print(f"psfusion-bench: one real forward pass at {net_size[0]}x{net_size[1]} to replay ...", flush=True)
        engine = pipeline.engine
        pipeline.engine = recorder = RecordingEngine(engine)
        real_ms = pipeline(decode_rgb(rgb_msg), decode_thermal(thermal_msg)).timing_ms["inference"]
        pipeline.engine = ReplayEngine(engine, recorder.output)

    private_ros_env()
    rclpy.init(args=[])
    node = Node("psfusion_bench")
    pub_fused = node.create_publisher(Image, "bench/fused", 5)
    pub_mask = node.create_publisher(Image, "bench/mask", 5)
    node.create_subscription(Image, "bench/fused", lambda m: None, 5)  # a matched reader, as in the field
    sync = ApproximateTimeSync(2, 10, 50_000_000)
    samples: dict[str, list[float]] = {}

    def add(name: str, ms: float) -> None:
        samples.setdefault(name, []).append(ms)

    for i in range(args.warmup + args.iterations):
        t0 = time.perf_counter()
        rgb = decode_rgb(rgb_msg)
        thermal = decode_thermal(thermal_msg)
        t1 = time.perf_counter()
        stamp = 1_000_000_000 + i * 33_000_000
        sync.push(0, stamp - 1_000_000, thermal)
        sync.push(1, stamp, rgb)
        t2 = time.perf_counter()
        result = pipeline(rgb, thermal)
        t3 = time.perf_counter()
        fused_msg = fill_image(Image(), result.fused, "rgb8")
        mask_msg = fill_image(Image(), result.class_ids, "mono8")
        if args.color:
            fill_image(Image(), colorize(result.class_ids), "rgb8")
        t4 = time.perf_counter()
        pub_fused.publish(fused_msg)
        pub_mask.publish(mask_msg)
        t5 = time.perf_counter()
        if i < args.warmup:
            continue
        add("decode", (t1 - t0) * 1e3)
        add("sync", (t2 - t1) * 1e3)
        for name, ms in result.timing_ms.items():
            add(name, ms)
        add("encode", (t4 - t3) * 1e3)
        add("publish", (t5 - t4) * 1e3)
        outside = (t5 - t0) * 1e3 - sum(result.timing_ms[k] for k in NETWORK_STAGES)
        add("total_without_network", outside)
        add("total_without_network_with_argmax", outside + result.timing_ms["argmax"])
        add("total", (t5 - t0) * 1e3)
    node.destroy_node()
    rclpy.try_shutdown()
    report = {"benchmark": "stages" if replay else "pipeline", "rgb_size": list(rgb_size),
              "thermal_size": list(thermal_size), "network_size": list(net_size), "registration": args.registration,
              "device": str(pipeline.device), "backend": pipeline.engine.name if not replay else "replay",
              "precision": pipeline.config.engine.precision, "data_path": "device" if pipeline.tensor_path
              else "arrays", "iterations": args.iterations, "torch_threads": torch.get_num_threads(),
              "stages_ms": _summary(samples)}
    if real_ms is not None:
        report["real_forward_ms"] = round(real_ms, 1)
    return report


def bench_backends(args: argparse.Namespace) -> dict[str, Any]:
    size = parse_size(args.network_size)
    device = resolve_device(args.device)
    config = PipelineConfig(allow_untrained=True)
    if args.checkpoint:
        model = load_model(config.with_params({"checkpoint": args.checkpoint}))
    else:
        model = precision_study.load_weight_set(f"seed:{args.seed}")[1]
    backends = args.backends.split(",") if args.backends else (
        ["eager", "eager-cudagraphs", "compile", "compile-cudagraphs", "tensorrt"] if device.type == "cuda"
        else ["eager", "compile", "compile-aot"])
    precisions = args.precisions.split(",") if args.precisions else (
        ["fp32", "fp16"] if device.type == "cuda" else ["fp32", "bf16"])
    for name in backends:
        if name not in BENCH_BACKENDS:
            raise ConfigError(f"unknown backend {name!r}; expected one of {', '.join(BENCH_BACKENDS)}")
    for name in precisions:
        if name not in PRECISIONS:
            raise ConfigError(f"unknown precision {name!r}; expected one of {', '.join(PRECISIONS)}")
    candidates = [(b, p) for b in backends for p in precisions
                  if not (p == "fp16" and device.type != "cuda") and not (b == "tensorrt" and device.type != "cuda")
                  and not (b == "onnxruntime" and p != "fp32")]
    return run_backends(model, device, size, candidates, args.iterations, args.warmup)


def bench_soak(args: argparse.Namespace) -> dict[str, Any]:
    from psfusion_ros.harness.drive_player import DrivePlayer
    from psfusion_ros.harness.node_process import NodeProcess, private_ros_env

    rgb_size, thermal_size = parse_size(args.size), parse_size(args.thermal_size)
    net_size = parse_size(args.network_size)
    out = Path(args.out)
    env = private_ros_env()
    player = DrivePlayer(rgb_size, thermal_size, frames=20)
    H = player.thermal_to_rgb
    overrides = {"allow_untrained": True, "network_height": net_size[0], "network_width": net_size[1],
                 "device": args.device, "registration.mode": "homography",
                 "registration.homography": "[" + ",".join(repr(float(v)) for v in H.ravel()) + "]"}
    node = NodeProcess(overrides, out / "soak_node.log", env=env)
    samples: list[tuple[float, float, int]] = []
    try:
        if not player.wait_for_node(120, alive=lambda: node.proc.poll() is None):
            raise RuntimeError(f"node did not start: {node.output()[-1500:]}")
        start = time.monotonic()
        i = 0
        next_sample = start
        while (now := time.monotonic()) - start < args.duration:
            player.publish(i)
            i += 1
            if now >= next_sample:
                samples.append((now - start, node.rss_mb(), player.received.fused_count))
                next_sample += args.sample_period
                print(f"\r  t={now - start:6.0f} s  rss={samples[-1][1]:7.1f} MB  fused={samples[-1][2]}",
                      end="", flush=True)
            player.spin_for(max(start + i / args.rate - time.monotonic(), 0.0))
        print()
        diagnostics = player.last_diagnostics()
    finally:
        exit_code = node.interrupt()
        player.close()
    t, rss, fused = (np.array(c) for c in zip(*samples))
    settled = t >= min(args.warm, t[-1] / 2)
    slope = float(np.polyfit(t[settled] / 60.0, rss[settled], 1)[0]) if settled.sum() > 2 else float("nan")
    _plot_soak(out / "soak_rss.png", t, rss, fused)
    return {"benchmark": "soak", "duration_s": args.duration, "rate_hz": args.rate, "frames_published": i,
            "frames_fused": int(fused[-1]), "rss_mb": {"first": float(rss[0]), "after_warmup": float(rss[settled][0]),
                                                       "last": float(rss[-1]), "max": float(rss.max())},
            "rss_slope_mb_per_min_after_warmup": slope, "node_exit_code": exit_code,
            "rss_growth_mb_second_half": float(rss[-1] - rss[len(rss) // 2]),
            "diagnostics": {k: diagnostics.get(k) for k in (
                "thermal rate (Hz)", "rgb rate (Hz)", "matched pairs", "thermal dropped by sync", "rgb dropped by sync",
                "stale pairs skipped", "latency p50 (ms)", "inference p50 (ms)", "message")},
            "plot": str(out / "soak_rss.png")}


def _plot_soak(path: Path, t: np.ndarray, rss: np.ndarray, fused: np.ndarray) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.plot(t / 60.0, rss, color="tab:red")
    ax.set_xlabel("minutes")
    ax.set_ylabel("node resident memory (MB)", color="tab:red")
    ax.set_ylim(0, rss.max() * 1.15)
    ax2 = ax.twinx()
    ax2.plot(t / 60.0, fused, color="tab:blue", alpha=0.6)
    ax2.set_ylabel("frames fused", color="tab:blue")
    ax.set_title("psfusion_node soak: memory over time")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _print_table(report: dict[str, Any]) -> None:
    if report["benchmark"] in ("stages", "pipeline"):
        print(f"{report['benchmark']}: {report['backend']} {report['precision']} on {report['device']} "
              f"({report['data_path']} data path), network {report['network_size'][0]}x{report['network_size'][1]}")
        print(f"{'stage':38s} {'p50 ms':>8s} {'p95 ms':>8s}")
        for name, s in report["stages_ms"].items():
            print(f"{name:38s} {s['p50']:8.3f} {s['p95']:8.3f}")
    elif report["benchmark"] == "backends":
        print_backends(report)
    elif report["benchmark"] == "precision":
        precision_study.print_report(report)
    elif report["benchmark"] == "registration":
        registration_bench.print_report(report)
    else:
        print(dumps({k: v for k, v in report.items() if k != "benchmark"}, indent=2))


def _stage_args(parser: argparse.ArgumentParser, iterations: int, warmup: int) -> None:
    parser.add_argument("--size", default="480x640", help="RGB frame HxW (default 480x640)")
    parser.add_argument("--thermal-size", default="512x640", help="thermal frame HxW (default 512x640)")
    parser.add_argument("--network-size", default="480x640")
    parser.add_argument("--registration", default="homography", choices=("homography", "identity"))
    parser.add_argument("--color", action="store_true", help="also encode segmentation/color")
    parser.add_argument("--iterations", type=int, default=iterations)
    parser.add_argument("--warmup", type=int, default=warmup)
    parser.add_argument("--device", default="cpu", choices=DEVICES)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="psfusion-bench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", help="also write the results to this JSON file")
    backends = sub.add_parser("backends", parents=[common], help="the network alone: every backend x precision, "
                              "interleaved, with speed-up and accuracy against eager fp32")
    backends.add_argument("--network-size", default="480x640")
    backends.add_argument("--device", default="auto", choices=DEVICES)
    backends.add_argument("--backends", help=f"comma list of {', '.join(BENCH_BACKENDS)} (default: eager, compile "
                          "and compile-aot on a CPU; eager and compile with and without CUDA graphs, and tensorrt, "
                          "on CUDA)")
    backends.add_argument("--precisions", help="comma list (default: fp32,bf16 on a CPU; fp32,fp16 on CUDA)")
    backends.add_argument("--checkpoint", help="weights (default: seeded untrained weights, same speed)")
    backends.add_argument("--seed", type=int, default=UNTRAINED_SEED,
                          help=f"seed of the untrained weights without --checkpoint (default {UNTRAINED_SEED}: the "
                          "demo's; bf16 accuracy depends on the weights)")
    backends.add_argument("--iterations", type=int, default=5, help="interleaved timed rounds")
    backends.add_argument("--warmup", type=int, default=1)
    precision = sub.add_parser("precision", parents=[common], help="which blocks lose accuracy in bf16/fp16: each "
                               "block alone in fp32, then the smallest fp32 set reaching the targets")
    precision.add_argument("--network-size", default="480x640")
    precision.add_argument("--precision", default="bf16", choices=("bf16", "fp16"), help="fp16 needs CUDA")
    precision.add_argument("--weights", nargs="+", default=[f"seed:{UNTRAINED_SEED}"],
                           help="weight sets, each seed:N (seeded untrained initialisation) or a checkpoint path; the "
                           "fp32 set must meet the targets on all of them")
    precision.add_argument("--target-psnr", type=float, default=precision_study.TARGETS[0],
                           help="fused PSNR (dB) against fp32 to reach (default: the policy's target)")
    precision.add_argument("--target-agreement", type=float, default=precision_study.TARGETS[1],
                           help="mask agreement (fraction of pixels) to reach")
    pipeline = sub.add_parser("pipeline", parents=[common], help="the whole per-pair path with a real backend")
    _stage_args(pipeline, 20, 3)
    pipeline.add_argument("--backend", default="eager", choices=("eager", "compile", "tensorrt"))
    pipeline.add_argument("--precision", default="fp32", choices=PRECISIONS)
    pipeline.add_argument("--engine-path", type=existing_file, help="artifact from psfusion-export")
    pipeline.add_argument("--checkpoint", help="weights (default: seeded untrained weights)")
    stages = sub.add_parser("stages", parents=[common], help="per-stage cost of everything besides the network")
    _stage_args(stages, 300, 20)
    soak = sub.add_parser("soak", parents=[common], help="the live node for a long run; memory over time")
    soak.add_argument("--duration", type=float, default=600.0, help="seconds (default 600)")
    soak.add_argument("--rate", type=float, default=10.0, help="camera rate in Hz (default 10)")
    soak.add_argument("--size", default="480x640")
    soak.add_argument("--thermal-size", default="512x640")
    soak.add_argument("--network-size", default="64x96", help="small on CPU so many frames pass (default 64x96)")
    soak.add_argument("--device", default="auto", choices=DEVICES)
    soak.add_argument("--sample-period", type=float, default=5.0)
    soak.add_argument("--warm", type=float, default=60.0, help="seconds excluded from the memory slope")
    soak.add_argument("--out", default="bench_out")
    monitor = sub.add_parser("monitor", parents=[common], help="cost of the live registration check to inference")
    monitor.add_argument("--size", default="480x640")
    monitor.add_argument("--thermal-size", default="360x480")
    monitor.add_argument("--network-size", default="256x320")
    monitor.add_argument("--device", default="auto", choices=DEVICES)
    monitor.add_argument("--check-period", type=float, default=DEFAULTS["registration.check_period"],
                         help="seconds (default: the node's default)")
    monitor.add_argument("--rounds", type=int, default=4, help="on/off block pairs")
    monitor.add_argument("--block", type=int, default=8, help="pairs per block")
    monitor.add_argument("--out", default="bench_out")
    registration = sub.add_parser("registration", parents=[common], help="automatic registration vs baselines on "
                                  "seeded rig warps of aligned pairs")
    registration_bench.add_arguments(registration)
    return parser


def bench_monitor(args: argparse.Namespace) -> dict[str, Any]:
    """The node with the right calibration, pairs fed one at a time; ``registration.monitor`` switched live in
    alternating blocks, so drift of this machine hits both states alike. Per-pair cycle time (what the worker
    sustains) per state."""
    from psfusion_ros.harness.drive_player import DrivePlayer
    from psfusion_ros.harness.node_process import NodeProcess, private_ros_env

    rgb_size, thermal_size = parse_size(args.size, network=False), parse_size(args.thermal_size, network=False)
    net_size = parse_size(args.network_size)
    env = private_ros_env()  # before the player's context: both on the private domain
    player = DrivePlayer(rgb_size, thermal_size, frames=6)
    overrides = {"allow_untrained": True, "network_height": net_size[0], "network_width": net_size[1],
                 "device": args.device, "registration.mode": "homography",
                 "registration.homography": [float(v) for v in player.thermal_to_rgb.ravel()],
                 "registration.check_period": args.check_period}
    node = NodeProcess(overrides, Path(args.out) / "monitor_node.log", env=env)
    gaps: dict[bool, list[float]] = {True: [], False: []}
    check_ms = []
    try:
        if not player.wait_for_node(120, alive=lambda: node.proc.poll() is None):
            raise ConfigError(f"psfusion_node did not start: {node.output()[-500:]}")
        player.lockstep(2)  # warm
        for block in range(2 * args.rounds):
            state = (block % 2 == 0) == (block % 4 < 2)  # on, off, off, on, on, off, ...
            if not player.set_parameter("psfusion", "registration.monitor", state):
                raise ConfigError("the node refused registration.monitor")
            player.lockstep(1)  # the first pair after a switch belongs to neither state
            gaps[state] += player.lockstep(args.block)
            text = player.last_diagnostics().get("registration check (ms)")
            if state and text:
                check_ms.append(float(text))
            print(f"\r  block {block + 1}/{2 * args.rounds}", end="", flush=True)
        print()
    finally:
        node.interrupt()
        player.close()

    def stats(values: list[float]) -> dict[str, float]:
        v = np.asarray(values) * 1e3
        return {"p50_ms": float(np.median(v)), "p25_ms": float(np.percentile(v, 25)),
                "p75_ms": float(np.percentile(v, 75)), "pairs": len(v)}

    on, off = stats(gaps[True]), stats(gaps[False])
    return {"benchmark": "monitor", "rgb_size": list(rgb_size), "thermal_size": list(thermal_size),
            "network_size": list(net_size), "check_period_s": args.check_period, "monitor_on": on, "monitor_off": off,
            "p50_ratio_on_off": on["p50_ms"] / off["p50_ms"],
            "check_ms_p50": float(np.median(check_ms)) if check_ms else None}


def bench_precision(args: argparse.Namespace) -> dict[str, Any]:
    def progress(line: str) -> None:
        print(f"psfusion-bench: {line}", file=sys.stderr, flush=True)

    return precision_study.study(args.weights, parse_size(args.network_size), args.precision,
                                 (args.target_psnr, args.target_agreement), progress)


def bench_registration(args: argparse.Namespace) -> dict[str, Any]:
    size = None if args.size == "native" else parse_size(args.size, network=False)
    pairs = registration_bench.load_pairs(args.ir, args.vi, size)
    available = [registration_bench.OURS, *registration_baselines.baselines()]
    methods = args.methods.split(",") if args.methods else available
    unknown = [m for m in methods if m not in available]
    if unknown:
        raise ConfigError(f"unknown method {unknown[0]!r}; available here: {', '.join(available)}")
    return registration_bench.run_bench(pairs, methods, args.cases_per_pair, args.seed, args.joint)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def run() -> int:
        run_bench = {"stages": bench_stages, "pipeline": lambda a: bench_stages(a, replay=False),
                     "backends": bench_backends, "soak": bench_soak, "registration": bench_registration,
                     "monitor": bench_monitor, "precision": bench_precision}[args.command]
        report = run_bench(args)
        _print_table(report)
        if args.json:
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            write_json(args.json, report, indent=2)
        return 0

    return run_cli("psfusion-bench", run)


if __name__ == "__main__":
    sys.exit(main())
