"""``psfusion-bench``: how fast, measured the same way every time; results as tables, JSON and plots.

* ``stages``: everything the node does besides the network, per stage, on real Image messages
  (decode, sync, normalize, register, resize, colour, argmax, resize back, encode, publish). The network's
  output is computed once for real and replayed, so the loop times only the code around it.
* ``backends``: forward passes of the network per precision, as ratios measured in one run.
* ``soak``: the live node for a long run at a fixed rate; resident memory over time (flat or not).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from psfusion_ros.harness.synthetic import misalignment_homography, synthetic_frame, thermal_counts
from psfusion_ros.pipeline.builder import build_pipeline
from psfusion_ros.pipeline.config import PipelineConfig
from psfusion_ros.pipeline.engines import create_engine
from psfusion_ros.pipeline.engines.base import InferenceOutput, resolve_device
from psfusion_ros.pipeline.resize import parse_size
from psfusion_ros.pipeline.sync import ApproximateTimeSync
from psfusion_ros.tools.cli import run_cli

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

    def __init__(self, engine: object, output: InferenceOutput) -> None:
        self.device, self.precision, self.num_classes = engine.device, engine.precision, engine.num_classes
        self.output = output

    def __call__(self, vi: torch.Tensor, ir: torch.Tensor) -> InferenceOutput:
        return self.output


def _summary(samples: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    return {k: {"p50": float(np.median(v)), "p95": float(np.percentile(v, 95)), "mean": float(np.mean(v))}
            for k, v in samples.items()}


def bench_stages(args: argparse.Namespace) -> dict[str, Any]:
    import rclpy
    from rclpy.node import Node
    from sensor_msgs.msg import Image

    from psfusion_ros.harness.node_process import private_ros_env
    from psfusion_ros.io.image_codec import decode_rgb, decode_thermal, fill_image
    from psfusion_ros.pipeline.color import colorize

    rgb_size, thermal_size = parse_size(args.size), parse_size(args.thermal_size)
    net_size = parse_size(args.network_size)
    H = misalignment_homography(rgb_size, thermal_size)
    scene = synthetic_frame(0, *rgb_size)
    rgb_msg = fill_image(Image(), scene.visible, "rgb8")
    thermal_msg = fill_image(Image(), thermal_counts(scene, thermal_size, H), "mono16")
    config = PipelineConfig(allow_untrained=True, network_size=net_size).with_params(
        {"device": "cpu", "registration.mode": args.registration,
         "registration.homography": [float(v) for v in H.ravel()]})
    pipeline = build_pipeline(config)
    print(f"psfusion-bench: one real forward pass at {net_size[0]}x{net_size[1]} to replay ...", flush=True)
    eager = pipeline.engine
    pipeline.engine = recorder = RecordingEngine(eager)
    real_ms = pipeline(decode_rgb(rgb_msg), decode_thermal(thermal_msg)).timing_ms["inference"]
    pipeline.engine = ReplayEngine(eager, recorder.output)

    private_ros_env()
    rclpy.init()
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
    node.destroy_node()
    rclpy.try_shutdown()
    return {"benchmark": "stages", "rgb_size": list(rgb_size), "thermal_size": list(thermal_size),
            "network_size": list(net_size), "registration": args.registration, "iterations": args.iterations,
            "torch_threads": torch.get_num_threads(), "real_forward_ms": round(real_ms, 1),
            "stages_ms": _summary(samples)}


def bench_backends(args: argparse.Namespace) -> dict[str, Any]:
    from psfusion_ros.model.psfusion import PSFusion

    net_size = parse_size(args.network_size)
    device = resolve_device(args.device)
    torch.manual_seed(0)
    model = PSFusion()
    vi, ir = torch.rand(1, 3, *net_size, device=device), torch.rand(1, 1, *net_size, device=device)
    results: dict[str, dict[str, float]] = {}
    reference = None
    for precision in args.precisions.split(","):
        engine = create_engine(PipelineConfig().engine.__class__(device=device.type, precision=precision), model,
                               device, net_size)
        for _ in range(args.warmup):
            engine(vi, ir)
        times = []
        for _ in range(args.iterations):
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            out = engine(vi, ir)
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append((time.perf_counter() - t0) * 1e3)
        fused = out.fused.float()
        reference = fused if reference is None else reference
        results[f"eager-{precision}"] = {"p50_ms": float(np.median(times)), "min_ms": float(np.min(times)),
                                         "max_abs_fused_diff": float((fused - reference).abs().max())}
    base = next(iter(results.values()))["p50_ms"]
    for r in results.values():
        r["speedup"] = base / r["p50_ms"]
    return {"benchmark": "backends", "device": str(device), "network_size": list(net_size),
            "iterations": args.iterations, "torch_threads": torch.get_num_threads(), "results": results}


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
    if report["benchmark"] == "stages":
        print(f"{'stage':38s} {'p50 ms':>8s} {'p95 ms':>8s}")
        for name, s in report["stages_ms"].items():
            print(f"{name:38s} {s['p50']:8.3f} {s['p95']:8.3f}")
    elif report["benchmark"] == "backends":
        for name, r in report["results"].items():
            print(f"{name:16s} p50 {r['p50_ms']:9.1f} ms  speedup {r['speedup']:5.2f}x  "
                  f"max |Δfused| {r['max_abs_fused_diff']:.4f}")
    else:
        print(json.dumps({k: v for k, v in report.items() if k != "benchmark"}, indent=2))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="psfusion-bench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", help="also write the results to this JSON file")
    stages = sub.add_parser("stages", parents=[common], help="per-stage cost of everything besides the network")
    stages.add_argument("--size", default="480x640", help="RGB frame HxW (default 480x640)")
    stages.add_argument("--thermal-size", default="512x640", help="thermal frame HxW (default 512x640)")
    stages.add_argument("--network-size", default="480x640")
    stages.add_argument("--registration", default="homography", choices=("homography", "identity"))
    stages.add_argument("--color", action="store_true", help="also encode segmentation/color")
    stages.add_argument("--iterations", type=int, default=300)
    stages.add_argument("--warmup", type=int, default=20)
    backends = sub.add_parser("backends", parents=[common], help="network forward time per precision")
    backends.add_argument("--network-size", default="256x320")
    backends.add_argument("--precisions", default="fp32,bf16")
    backends.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    backends.add_argument("--iterations", type=int, default=5)
    backends.add_argument("--warmup", type=int, default=1)
    soak = sub.add_parser("soak", parents=[common], help="the live node for a long run; memory over time")
    soak.add_argument("--duration", type=float, default=600.0, help="seconds (default 600)")
    soak.add_argument("--rate", type=float, default=10.0, help="camera rate in Hz (default 10)")
    soak.add_argument("--size", default="480x640")
    soak.add_argument("--thermal-size", default="512x640")
    soak.add_argument("--network-size", default="64x96", help="small on CPU so many frames pass (default 64x96)")
    soak.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    soak.add_argument("--sample-period", type=float, default=5.0)
    soak.add_argument("--warm", type=float, default=60.0, help="seconds excluded from the memory slope")
    soak.add_argument("--out", default="bench_out")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def run() -> int:
        report = {"stages": bench_stages, "backends": bench_backends, "soak": bench_soak}[args.command](args)
        _print_table(report)
        if args.json:
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
        return 0

    return run_cli("psfusion-bench", run)


if __name__ == "__main__":
    sys.exit(main())
