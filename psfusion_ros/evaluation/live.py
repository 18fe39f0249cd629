"""``psfusion-eval --live``: the bag through the real node, the way the vehicle runs it (ros2_benchmark's method).

The offline evaluation measures the network; this measures the node: its QoS, its synchronizer under real arrival
order, its mailbox drops and its end-to-end latency. It starts ``psfusion_node`` with the same parameter file,
plays the bag into it at the recorded rate (and, with ``--rate-sweep``, faster, to find the highest rate it
sustains), records what the node publishes, samples the node's CPU and memory, and accounts for every input pair:

    offline pairs = published + lost in transport (to the node) + dropped by sync + replaced in the mailbox
                    + inference errors + pending at the end + lost on the way back

Transport, mailbox, errors, pending and the way back are counted by the node and the recorder; sync is what
remains (frames that found no partner within ``sync.max_interval``, or were paired differently than offline).
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from psfusion_ros.errors import DataError
from psfusion_ros.harness.bag_player import BagPlayer
from psfusion_ros.harness.node_process import NodeProcess, private_ros_env
from psfusion_ros.io.bags import COMPRESSED_IMAGE, BagReader, BagWriter, stamp_of
from psfusion_ros.io.image_codec import decode_image, decode_rgb, decode_thermal
from psfusion_ros.metrics import METRIC_NAMES, fusion_metrics, grey_255
from psfusion_ros.pipeline.config import PipelineConfig, write_params_file
from psfusion_ros.pipeline.parameters import load_params_file
from psfusion_ros.pipeline.registration import Registration
from psfusion_ros.pipeline.thermal import ThermalNormalizer

OUTPUTS = {"/fused/image": "sensor_msgs/msg/Image", "/segmentation/mask": "sensor_msgs/msg/Image",
           "/diagnostics": "diagnostic_msgs/msg/DiagnosticArray"}
SUSTAINED = 0.95  # a rate is sustained when this fraction of the offline pairs is published


@dataclass
class Received:
    fused: dict[int, tuple[int, int, bytes]] = field(default_factory=dict)  # rgb stamp → (receipt ns, transit ns, raw)
    masks: int = 0
    diagnostics: list[dict[str, str]] = field(default_factory=list)


def _proc_sample(pid: int) -> tuple[float, float]:
    """(CPU seconds used so far, resident MB) of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    rss = next(int(line.split()[1]) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
               if line.startswith("VmRSS:")) / 1024.0
    return cpu, rss


def input_topics(bag_topics: dict[str, tuple[str, int]], topic: str) -> tuple[str, str, str]:
    """(name the player publishes the bag topic under, the node's base topic, its transport): a compressed topic
    is image_transport's ``<base>/compressed``, so the node subscribes to what a camera driver would publish."""
    if bag_topics.get(topic, ("", 0))[0] != COMPRESSED_IMAGE:
        return topic, topic, "raw"
    if topic.endswith("/compressed"):
        return topic, topic[: -len("/compressed")], "compressed"
    return topic + "/compressed", topic, "compressed"


def _node_params(args: argparse.Namespace, config: PipelineConfig, out: Path) -> Path:
    """The vehicle's parameter file with the command line's overrides, as the node will read it (the transports
    follow the bag's topic types)."""
    from psfusion_ros.pipeline.parameters import default_params_file

    values = load_params_file(args.params_file or default_params_file())
    values.update(config.to_params())
    with BagReader(args.bag) as reader:
        bag_topics = reader.topics()
    values["thermal.transport"] = input_topics(bag_topics, args.thermal_topic)[2]
    values["rgb.transport"] = input_topics(bag_topics, args.rgb_topic)[2]
    if values.get("checkpoint"):
        values["checkpoint"] = str(Path(values["checkpoint"]).resolve())
    values["diagnostics.period"] = 0.5  # frequent enough to see the end of the run
    return write_params_file(out / "node_params.yaml", values)


def _info_topic(image_topic: str) -> str:
    return image_topic.rsplit("/", 1)[0] + "/camera_info"


def run_once(args: argparse.Namespace, params: Path, rate: float, out: Path, record: Path | None) -> dict[str, Any]:
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import Image

    with BagReader(args.bag) as reader:
        reader_topics = reader.topics()
    (thermal_out, thermal_base, _), (rgb_out, rgb_base, _) = (input_topics(reader_topics, t)
                                                              for t in (args.thermal_topic, args.rgb_topic))
    topics = [args.thermal_topic, args.rgb_topic] + [t for t in map(_info_topic, (thermal_base, rgb_base))
                                                       if t in reader_topics]
    remaps = ["-r", f"thermal/image_raw:={thermal_base}", "-r", f"rgb/image_raw:={rgb_base}",
              "-r", f"thermal/camera_info:={_info_topic(thermal_base)}",
              "-r", f"rgb/camera_info:={_info_topic(rgb_base)}"]
    player_remaps = {t: o for t, o in ((args.thermal_topic, thermal_out), (args.rgb_topic, rgb_out)) if t != o}
    env = private_ros_env()
    node = NodeProcess({}, out / f"node_x{rate:g}.log", params, env=env, ros_args=remaps)
    context = rclpy.Context()
    rclpy.init(args=[], context=context)
    recorder = Node("psfusion_live_recorder", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(recorder)
    got = Received()
    bag = BagWriter(record, args.storage) if record else None
    if bag is not None:
        bag.__enter__()
    lock = threading.Lock()

    def on_fused(raw: bytes, info: Any) -> None:
        receipt = time.time_ns()
        msg = deserialize_message(raw, Image)
        transit = int(info["received_timestamp"]) - int(info["source_timestamp"])
        with lock:
            got.fused[stamp_of(msg)] = (receipt, transit, raw)
            if bag is not None:
                bag.write_raw("/psfusion/fused/image", OUTPUTS["/fused/image"], raw, receipt)

    def on_mask(raw: bytes, info: Any) -> None:
        got.masks += 1
        if bag is not None:
            with lock:
                bag.write_raw("/psfusion/segmentation/mask", OUTPUTS["/segmentation/mask"], raw, time.time_ns())

    def on_diag(msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name.endswith(": fusion"):
                values = {kv.key: kv.value for kv in status.values}
                values.update(level=str(status.level[0] if isinstance(status.level, bytes) else status.level),
                              message=status.message)
                got.diagnostics.append(values)

    reliable = QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE)
    recorder.create_subscription(Image, "/fused/image", on_fused, reliable, raw=True)
    recorder.create_subscription(Image, "/segmentation/mask", on_mask, reliable, raw=True)
    recorder.create_subscription(DiagnosticArray, "/diagnostics", on_diag, 50)
    player = BagPlayer(args.bag, topics, remaps=player_remaps, rate=rate, reliability="reliable", depth=200)
    samples: list[tuple[float, float, float]] = []  # (seconds, cpu %, rss MB)
    try:
        deadline = time.monotonic() + 180

        def up() -> bool:  # the node subscribes to every topic and has reported since (discovery had time both ways)
            return all(p.get_subscription_count() for p in player.publishers.values()) and len(got.diagnostics) >= 2

        while not up():
            if node.proc.poll() is not None or time.monotonic() > deadline:
                last = (node.output().strip().splitlines() or ["(no output)"])[-1]
                raise DataError(f"psfusion_node did not start for the live run: {last}")
            if not all(p.get_subscription_count() for p in player.publishers.values()):
                got.diagnostics.clear()  # count reports only once the node's subscriptions are there
            executor.spin_once(timeout_sec=0.05)
        stop = threading.Event()
        playing = threading.Thread(target=lambda: player.play(stop, progress=False), daemon=True)
        started = time.monotonic()
        cpu0, _ = _proc_sample(node.pid)
        last_sample = (started, cpu0)
        play_start_ns = time.time_ns()
        playing.start()
        sys.stderr.write(f"psfusion-eval: live at x{rate:g}: playing {player.duration_s / rate:.1f} s of bag ...\n")

        def sample() -> None:
            nonlocal last_sample
            now = time.monotonic()
            if now - last_sample[0] >= 0.5:
                cpu, rss = _proc_sample(node.pid)
                cpu_percent = 100 * (cpu - last_sample[1]) / (now - last_sample[0])
                samples.append((round(now - started, 2), round(cpu_percent, 1), round(rss, 1)))
                last_sample = (now, cpu)

        while playing.is_alive():
            executor.spin_once(timeout_sec=0.05)
            sample()
        played_s = time.monotonic() - started

        def settled() -> bool:  # nothing left in flight: two reports alike, and every published frame received
            if len(got.diagnostics) < 2:
                return False
            a, b = got.diagnostics[-2], got.diagnostics[-1]
            keys = ("matched pairs", "frames published", "stale pairs skipped")
            return all(a[k] == b[k] for k in keys) and int(b["frames published"]) <= len(got.fused)

        mark = len(got.diagnostics)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and not (len(got.diagnostics) >= mark + 2 and settled()):
            executor.spin_once(timeout_sec=0.05)
            sample()
    finally:
        exit_code = node.interrupt()
        sent = dict(player.stats.published)
        player.close()
        executor.shutdown()
        recorder.destroy_node()
        rclpy.try_shutdown(context=context)
        if bag is not None:
            bag.__exit__(None, None, None)
    final = got.diagnostics[-1] if got.diagnostics else {}
    return {"rate": rate, "played_s": round(played_s, 2), "sent": sent, "final_diagnostics": final,
            "received": got, "samples": samples, "node_exit_code": exit_code,
            "rgb_sent": sent.get(rgb_out, 0), "thermal_sent": sent.get(thermal_out, 0),
            "play_start_ns": play_start_ns}


def _count(final: dict[str, str], key: str) -> int:
    try:
        return int(final.get(key, "0"))
    except ValueError:
        return 0


def account(run: dict[str, Any], offline_pairs: int) -> dict[str, Any]:
    """Every offline pair: published, or the reason it was not."""
    final, received = run["final_diagnostics"], run["received"]
    published = len(received.fused)
    lost_in = max(run["rgb_sent"] - _count(final, "rgb received"),
                  run["thermal_sent"] - _count(final, "thermal received"), 0)
    node_published = _count(final, "frames published")
    drops = {
        "transport_to_node": lost_in,
        "mailbox": _count(final, "stale pairs skipped"),
        "inference_errors": _count(final, "processing errors"),
        "pending_at_end": min(_count(final, "sync pending"), 1),
        "transport_from_node": max(node_published - published, 0),
    }
    drops["in_flight_at_end"] = max(_count(final, "matched pairs") - node_published - drops["mailbox"]
                                    - drops["inference_errors"], 0)
    drops["sync"] = offline_pairs - published - sum(drops.values())
    return {"total": offline_pairs, "published": published, "dropped": drops,
            "accounted": published + sum(drops.values()) == offline_pairs,
            "sync_counters": {"matched pairs": _count(final, "matched pairs"),
                              "thermal dropped by sync": _count(final, "thermal dropped by sync"),
                              "rgb dropped by sync": _count(final, "rgb dropped by sync"),
                              "sync resets": _count(final, "sync resets")}}


def _stats(values: list[float]) -> dict[str, float]:
    a = np.asarray(values, np.float64)
    return {"p50": round(float(np.median(a)), 2), "p95": round(float(np.percentile(a, 95)), 2),
            "max": round(float(a.max()), 2)} if a.size else {}


def _wall_publish_times(args: argparse.Namespace, rate: float) -> dict[int, float]:
    """When the player published each RGB frame (by header stamp), in seconds after it started playing."""
    with BagReader(args.bag) as reader:
        first = reader.span_ns[0]
        return {stamp_of(msg): (log_time - first) / 1e9 / rate
                for _, log_time, msg in reader.messages([args.rgb_topic])}


def live_metrics(args: argparse.Namespace, config: PipelineConfig, fused: dict[int, tuple[int, int, bytes]],
                 profile: str) -> dict[str, float]:
    """Fusion metrics of the images the node published, against the inputs as its pipeline saw them."""
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import Image

    if not fused:
        return {}
    thermal_norm = ThermalNormalizer(config.thermal)
    registration = Registration.from_config(config.registration)
    rows = []
    last_thermal = None
    with BagReader(args.bag) as reader:
        for topic, _, msg in reader.messages([args.thermal_topic, args.rgb_topic]):
            if topic == args.thermal_topic:
                last_thermal = thermal_norm(np.array(decode_thermal(msg)))
                continue
            stamp = stamp_of(msg)
            if stamp not in fused or last_thermal is None:
                continue
            rgb = np.array(decode_rgb(msg))
            out = np.array(decode_image(deserialize_message(fused[stamp][2], Image)))
            ir = registration.apply(last_thermal, rgb.shape[:2])
            ir = ir.astype(np.float32) if ir.dtype == np.uint8 else np.round(ir * 255).astype(np.float32)
            if rgb.ndim == 3 and rgb.shape[2] == 3 and out.shape == rgb.shape:
                rows.append(fusion_metrics(grey_255(out), ir, grey_255(rgb), profile))
    return {k: float(np.mean([r[k] for r in rows])) for k in METRIC_NAMES} if rows else {}


def run_live(args: argparse.Namespace, config: PipelineConfig, out: Path, offline_pairs: int) -> dict[str, Any]:
    """The live section of the report: one run at the recorded rate (recorded into OUT/bag) and the sweep."""
    live_dir = out / "live"
    live_dir.mkdir(parents=True, exist_ok=True)
    params = _node_params(args, config, live_dir)
    rates = [args.rate] + [r for r in (args.rate_sweep or []) if r != args.rate]
    runs = []
    for k, rate in enumerate(rates):
        run = run_once(args, params, rate, live_dir, out / "bag" if k == 0 else None)
        published_at = _wall_publish_times(args, rate)
        received = run["received"]
        transits = [transit / 1e6 for _, transit, _ in received.fused.values()]
        accounting = account(run, offline_pairs)
        entry = {
            "rate_factor": rate, "played_s": run["played_s"], "messages_sent": run["sent"],
            "input_rate_hz": round(run["rgb_sent"] / run["played_s"], 3) if run["played_s"] else 0.0,
            "output_rate_hz": round(accounting["published"] / run["played_s"], 3) if run["played_s"] else 0.0,
            **accounting,
            "latency_ms": {"publish_to_receipt": _stats(transits)},
            "node": {"exit_code": run["node_exit_code"], "samples": run["samples"],
                     "cpu_percent": _stats([s[1] for s in run["samples"]]),
                     "rss_mb": _stats([s[2] for s in run["samples"]])},
            "final_diagnostics": {k: v for k, v in run["final_diagnostics"].items()
                                  if k in ("level", "message", "inference p50 (ms)", "pipeline p50 (ms)",
                                           "latency p50 (ms)", "latency p95 (ms)", "backend", "device")},
        }
        if published_at and received.fused:
            # header stamp → receipt in replay time: when the RGB frame went out → when its fused image came back
            latencies = [(receipt - run["play_start_ns"]) / 1e6 - 1e3 * published_at[s]
                         for s, (receipt, _, _) in received.fused.items() if s in published_at]
            entry["latency_ms"]["stamp_to_receipt"] = _stats(latencies)
        if k == 0:
            entry["metrics"] = live_metrics(args, config, received.fused, args.profile)
            entry["output_bag"] = str(out / "bag")
        runs.append(entry)
        print(f"psfusion-eval: live x{rate:g}: {accounting['published']}/{offline_pairs} pairs published "
              f"({', '.join(f'{k} {v}' for k, v in accounting['dropped'].items() if v)})", file=sys.stderr)
    sustained = [r["rate_factor"] for r in runs if r["published"] >= SUSTAINED * max(offline_pairs, 1)]
    first = runs[0]
    lost = {k: v for k, v in first["dropped"].items() if v}
    why = max(lost, key=lost.get) if lost else None
    return {
        "method": "the real psfusion_node, the same parameter file, the bag played at its recorded timing",
        "node_params_file": str(params), "runs": runs,
        "max_sustained_rate_factor": max(sustained) if sustained else None,
        "vs_offline": {"offline_pairs": offline_pairs, "published_live": first["published"],
                       "lost_live": offline_pairs - first["published"], "by_reason": lost,
                       "summary": (f"the vehicle would have lost {offline_pairs - first['published']} of "
                                   f"{offline_pairs} pairs" + (f", most to {why.replace('_', ' ')}" if why else ""))},
    }


def live_figures(live: dict[str, Any]) -> list[tuple[str, Any]]:
    """(title, matplotlib figure) for report.html."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figures = []
    run = live["runs"][0]
    samples = np.asarray(run["node"]["samples"]) if run["node"]["samples"] else np.zeros((0, 3))
    if len(samples):
        fig, ax = plt.subplots(figsize=(10, 3))
        ax.plot(samples[:, 0], samples[:, 2], color="tab:red")
        ax.set_xlabel("seconds")
        ax.set_ylabel("node RSS (MB)", color="tab:red")
        ax2 = ax.twinx()
        ax2.plot(samples[:, 0], samples[:, 1], color="tab:blue", alpha=0.6)
        ax2.set_ylabel("node CPU (%)", color="tab:blue")
        ax.set_title("psfusion_node during the live run")
        fig.tight_layout()
        figures.append(("Node CPU and memory", fig))
    if len(live["runs"]) > 1:
        fig, ax = plt.subplots(figsize=(6, 3))
        rates = [r["rate_factor"] for r in live["runs"]]
        ax.plot(rates, [r["published"] / max(r["total"], 1) for r in live["runs"]], "o-")
        ax.axhline(SUSTAINED, color="k", lw=0.5)
        ax.set_xlabel("playback rate factor")
        ax.set_ylabel("fraction published")
        ax.set_title("Rate sweep")
        fig.tight_layout()
        figures.append(("Rate sweep", fig))
    return figures
