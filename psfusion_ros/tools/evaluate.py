"""``psfusion-eval``: the node's pipeline, offline, on a rosbag2 (MCAP or sqlite3) or an image-folder dataset.

Every synchronized pair is fused (none dropped), scored with the fusion metrics (and mIoU when labels are
given), timed per stage, and written to an output bag that plays next to the original. The run streams:
memory does not grow with the bag, and an interrupted run still leaves a valid report and bag.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from psfusion_ros.metrics import METRIC_NAMES, PROFILES, ConfusionMatrix, fusion_metrics
from psfusion_ros.pipeline import ApproximateTimeSync, FusionPipeline, FusionResult
from psfusion_ros.pipeline.registration import Registration
from psfusion_ros.pipeline.resize import parse_size
from psfusion_ros.pipeline.thermal import ThermalNormalizer
from psfusion_ros.ros.image_codec import ImageDecodeError, decode_image, to_rgb, to_thermal
from psfusion_ros.tools.bag_io import BagReader, BagWriter, header, image_message, stamp_of
from psfusion_ros.tools.cli import add_runtime_args, existing_dir, run_cli
from psfusion_ros.tools.image_io import matched_names, read_image

LABEL_DIRS = ("label", "Label", "Segmentation_labels", "labels")
OUT_FUSED, OUT_MASK = "/psfusion/fused/image", "/psfusion/segmentation/mask"
PREVIEWS = 3


@dataclass
class Pair:
    """One synchronized pair, decoded."""

    index: int
    rgb: np.ndarray
    thermal: np.ndarray
    rgb_header: Any
    rgb_stamp_ns: int
    thermal_stamp_ns: int
    log_time_ns: int
    name: str = ""
    label: np.ndarray | None = None
    decode_ms: float = 0.0
    sync_ms: float = 0.0


@dataclass
class Accumulator:
    """Everything the report needs, kept small: per-pair rows are a few numbers each."""

    per_pair: list[dict[str, Any]] = field(default_factory=list)
    timing: dict[str, list[float]] = field(default_factory=dict)
    previews: list[tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)
    confusion: ConfusionMatrix | None = None
    skipped: list[str] = field(default_factory=list)

    def time(self, stage: str, ms: float) -> None:
        self.timing.setdefault(stage, []).append(ms)


def grey_255(image: np.ndarray) -> np.ndarray:
    """How the reference evaluators read an image: grey float32 0..255, rounded (cv2 luma)."""
    if image.ndim == 3:
        return np.round(cv2.cvtColor(image.astype(np.float32), cv2.COLOR_RGB2GRAY))
    return image.astype(np.float32)


def thermal_255(result: FusionResult) -> np.ndarray:
    """The thermal image as the network saw it (normalized, registered) in 0..255, for the metrics."""
    ir = result.thermal
    return ir.astype(np.float32) if ir.dtype == np.uint8 else np.round(ir * 255.0).astype(np.float32)


# -- sources --------------------------------------------------------------------------------------------
def bag_pairs(reader: BagReader, args: argparse.Namespace, acc: Accumulator, sync: ApproximateTimeSync):
    topics = reader.topics()
    for topic in (args.thermal_topic, args.rgb_topic):
        if topic not in topics:
            images = [t for t, (mt, _) in topics.items() if mt.endswith("/Image")]
            raise ValueError(f"{reader.path}: no topic {topic}; image topics in the bag: {', '.join(images) or 'none'}")
    wanted = [args.thermal_topic, args.rgb_topic] + ([args.label_topic] if args.label_topic in topics else [])
    labels: dict[int, np.ndarray] = {}
    count = 0

    def emit(sets: list, decode_ms: float, sync_ms: float):
        nonlocal count
        for (t_stamp, (thermal, _, _)), (r_stamp, (rgb, rgb_header, rgb_log)) in sets:
            yield Pair(count, rgb, thermal, rgb_header, r_stamp, t_stamp, rgb_log, label=labels.pop(r_stamp, None),
                       decode_ms=decode_ms, sync_ms=sync_ms)
            count += 1

    for topic, log_time, msg in reader.messages(wanted):
        if args.limit and count >= args.limit:
            return
        t0 = time.perf_counter()
        if topic == args.label_topic:
            labels[stamp_of(msg)] = np.array(decode_image(msg))
            if len(labels) > 1000:  # labels that never matched an RGB frame: forget the oldest
                for key in sorted(labels)[:500]:
                    labels.pop(key)
            continue
        try:
            pixels = decode_image(msg)
            frame = to_thermal(pixels, msg.encoding) if topic == args.thermal_topic else to_rgb(pixels, msg.encoding)
        except ImageDecodeError as exc:
            acc.skipped.append(f"{topic} at {stamp_of(msg)}: {exc}")
            continue
        t1 = time.perf_counter()
        sets = sync.push(0 if topic == args.thermal_topic else 1, stamp_of(msg), (frame, msg.header, log_time))
        yield from emit(sets, (t1 - t0) * 1e3, (time.perf_counter() - t1) * 1e3)
    if not (args.limit and count >= args.limit):
        yield from emit(sync.flush(), 0.0, 0.0)  # the bag ended: the pending pair cannot improve any more


def folder_pairs(args: argparse.Namespace, acc: Accumulator):
    names, _ = matched_names(Path(args.ir), Path(args.vi))
    if not names:
        raise ValueError(f"no image file names appear in both {args.ir} and {args.vi}")
    label_dir = Path(args.labels) if args.labels else next(
        (Path(args.ir).parent / d for d in LABEL_DIRS if (Path(args.ir).parent / d).is_dir()), None)
    for index, name in enumerate(names[: args.limit or None]):
        t0 = time.perf_counter()
        try:
            rgb, thermal = read_image(Path(args.vi) / name, "RGB"), read_image(Path(args.ir) / name, "L")
        except ValueError as exc:
            acc.skipped.append(str(exc))
            continue
        label = None
        if label_dir is not None:
            path = next((p for p in (label_dir / name, label_dir / (Path(name).stem + ".png")) if p.exists()), None)
            label = read_image(path, "L") if path else None
        stamp = 1_700_000_000 * 1_000_000_000 + index * 100_000_000
        yield Pair(index, rgb, thermal, header(stamp, "rgb_optical"), stamp, stamp, stamp, name=name, label=label,
                   decode_ms=(time.perf_counter() - t0) * 1e3)


# -- per pair -------------------------------------------------------------------------------------------
def process(pair: Pair, pipeline: FusionPipeline, args: argparse.Namespace, acc: Accumulator,
            out_bag: BagWriter) -> FusionResult:
    result = pipeline(pair.rgb, pair.thermal)
    t0 = time.perf_counter()
    metrics = fusion_metrics(grey_255(result.fused), thermal_255(result), grey_255(pair.rgb), args.profile)
    t1 = time.perf_counter()
    out_bag.write(OUT_FUSED, image_message(result.fused, "rgb8", pair.rgb_header), pair.log_time_ns)
    out_bag.write(OUT_MASK, image_message(result.class_ids, "mono8", pair.rgb_header), pair.log_time_ns)
    t2 = time.perf_counter()
    if pair.label is not None:
        if acc.confusion is None:
            acc.confusion = ConfusionMatrix(pipeline.engine.model.num_classes)
        label = pair.label if pair.label.shape == result.class_ids.shape else cv2.resize(
            pair.label, result.class_ids.shape[::-1], interpolation=cv2.INTER_NEAREST)
        acc.confusion.update(result.class_ids, label)
    for stage, ms in (("decode", pair.decode_ms), ("sync", pair.sync_ms), *result.timing_ms.items(),
                      ("metrics", (t1 - t0) * 1e3), ("write", (t2 - t1) * 1e3)):
        acc.time(stage, ms)
    acc.time("pipeline_total", sum(result.timing_ms.values()))
    row = {"index": pair.index, "rgb_stamp_ns": pair.rgb_stamp_ns, "thermal_stamp_ns": pair.thermal_stamp_ns,
           "offset_ms": (pair.thermal_stamp_ns - pair.rgb_stamp_ns) / 1e6,
           "metrics": {k: round(float(v), 6) for k, v in metrics.items()},
           "pipeline_ms": round(sum(result.timing_ms.values()), 3)}
    if pair.name:
        row["name"] = pair.name
    acc.per_pair.append(row)
    return result


def _keep_preview(acc: Accumulator, pair: Pair, result: FusionResult, every: int) -> None:
    if pair.index % every or len(acc.previews) >= PREVIEWS:
        return
    scale = min(1.0, 240 / pair.rgb.shape[0])

    def small(image: np.ndarray, interpolation: int = cv2.INTER_AREA) -> np.ndarray:
        return image if scale == 1.0 else cv2.resize(image, None, fx=scale, fy=scale, interpolation=interpolation)

    acc.previews.append((pair.index, small(pair.rgb), small(thermal_255(result).astype(np.uint8)),
                         small(result.fused), small(result.class_ids, cv2.INTER_NEAREST)))


def _stats(values: list[float]) -> dict[str, float]:
    a = np.asarray(values, np.float64)
    return {"mean": float(a.mean()), "p50": float(np.percentile(a, 50)), "p95": float(np.percentile(a, 95)),
            "max": float(a.max())} if a.size else {}


def build_report(args: argparse.Namespace, acc: Accumulator, sync: ApproximateTimeSync | None,
                 pipeline: FusionPipeline, seconds: float, interrupted: bool) -> dict[str, Any]:
    rows = acc.per_pair
    metrics = {k: float(np.mean([r["metrics"][k] for r in rows])) for k in METRIC_NAMES} if rows else {}
    report: dict[str, Any] = {
        "source": {"bag": args.bag, "thermal_topic": args.thermal_topic, "rgb_topic": args.rgb_topic}
        if args.bag else {"ir": args.ir, "vi": args.vi},
        "checkpoint": args.checkpoint, "device": str(pipeline.device), "precision": args.precision,
        "network_size": list(pipeline.network_size) if pipeline.network_size else "floor to multiple of 32",
        "profile": args.profile, "pairs": len(acc.per_pair), "interrupted": interrupted,
        "seconds": round(seconds, 3), "pairs_per_second": round(len(acc.per_pair) / seconds, 3) if seconds else 0.0,
        "metrics": metrics,
        "timing": {stage: _stats(v) for stage, v in acc.timing.items()},
        "skipped": acc.skipped[:50], "skipped_count": len(acc.skipped),
        "output_bag": str(Path(args.out) / "bag"),
    }
    if sync is not None:
        offsets = [r["offset_ms"] for r in acc.per_pair]
        report["sync"] = {
            "matched": sync.stats.matched,
            "received": dict(zip((args.thermal_topic, args.rgb_topic), sync.stats.received)),
            "dropped": dict(zip((args.thermal_topic, args.rgb_topic), sync.stats.dropped)),
            "resets": sync.stats.resets,
            "offset_ms": {**_stats(offsets), "abs_max": float(np.max(np.abs(offsets))) if offsets else 0.0},
            "max_interval_ms": args.max_interval * 1e3,
        }
    if acc.confusion is not None:
        report["segmentation"] = acc.confusion.summary()
    report["per_pair"] = acc.per_pair
    return report


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="psfusion-eval", description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--bag", help="rosbag2 folder or file (MCAP or sqlite3)")
    source.add_argument("--ir", type=existing_dir, help="image-folder dataset: infrared folder (with --vi)")
    parser.add_argument("--vi", type=existing_dir, help="image-folder dataset: visible folder")
    parser.add_argument("--checkpoint", required=True, help="best_model.pth or a psfusion_ros checkpoint")
    parser.add_argument("--out", required=True, help="output folder: report.json, report.html, bag/")
    parser.add_argument("--thermal-topic", default="/thermal/image_raw")
    parser.add_argument("--rgb-topic", default="/rgb/image_raw")
    parser.add_argument("--label-topic", default="/labels/image", help="mono8 class-id labels in the bag")
    parser.add_argument("--labels", type=existing_dir, help="folder of label PNGs (default: label/, Label/ or "
                        "Segmentation_labels/ beside --ir)")
    parser.add_argument("--network-size", type=parse_size, metavar="HxW",
                        help="network input size (default: each frame shrunk to a multiple of 32)")
    parser.add_argument("--calibration", help="registration YAML from psfusion-calibrate (bags)")
    parser.add_argument("--profile", default="cddfuse", choices=tuple(PROFILES))
    parser.add_argument("--limit", type=int, default=0, help="stop after N pairs")
    parser.add_argument("--max-interval", type=float, default=0.05, help="largest stamp spread in a pair (s)")
    parser.add_argument("--queue-size", type=int, default=30, help="synchronizer queue per topic")
    parser.add_argument("--storage", default="mcap", choices=("mcap", "sqlite3"), help="output bag storage")
    parser.add_argument("--no-html", action="store_true", help="skip report.html")
    add_runtime_args(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.ir and not args.vi:
        parser.error("--ir needs --vi")

    def run() -> int:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        folder = args.bag is None
        pipeline = FusionPipeline.from_checkpoint(
            args.checkpoint, device=args.device, precision=args.precision, network_size=args.network_size,
            resample="paper" if folder else "fast",
            registration=None if folder else (Registration.from_file(args.calibration) if args.calibration
                                              else Registration("identity")),
            thermal=None if folder else ThermalNormalizer(),
        )
        acc = Accumulator()
        sync = None if folder else ApproximateTimeSync(2, args.queue_size, int(args.max_interval * 1e9) or None)
        reader = None if folder else BagReader(args.bag)
        if reader is not None:
            total = reader.topics()[args.rgb_topic][1] if args.rgb_topic in reader.topics() else None
            pairs = bag_pairs(reader, args, acc, sync)
        else:
            total = len(matched_names(Path(args.ir), Path(args.vi))[0])
            pairs = folder_pairs(args, acc)
        total = min(total, args.limit) if (total and args.limit) else total
        every = max((total or 1) // PREVIEWS, 1)
        signal.signal(signal.SIGTERM, signal.default_int_handler)  # finish cleanly on SIGTERM as on Ctrl-C
        start, interrupted = time.perf_counter(), False
        with BagWriter(out / "bag", args.storage) as out_bag:
            bar = tqdm(total=total, unit="pair", dynamic_ncols=True)
            try:
                for pair in pairs:
                    result = process(pair, pipeline, args, acc, out_bag)
                    _keep_preview(acc, pair, result, every)
                    bar.update(1)
            except KeyboardInterrupt:
                interrupted = True
            finally:
                bar.close()
                if reader is not None:
                    reader.close()
        report = build_report(args, acc, sync, pipeline, time.perf_counter() - start, interrupted)
        tmp = out / "report.json.partial"
        tmp.write_text(json.dumps(report, indent=1) + "\n")
        tmp.replace(out / "report.json")
        if not args.no_html:
            from psfusion_ros.tools.eval_report import write_html

            write_html(out / "report.html", report, acc.previews)
        means = ", ".join(f"{k} {v:.3f}" for k, v in report["metrics"].items())
        seg = report.get("segmentation")
        print(f"psfusion-eval: {report['pairs']} pairs in {report['seconds']:.1f} s "
              f"({report['pairs_per_second']:.2f} pairs/s){' [interrupted]' if interrupted else ''}; {means}"
              + (f"; mIoU {seg['mIoU']:.4f}" if seg else "") + f" -> {out / 'report.json'}")
        if not report["pairs"] and not interrupted:
            raise ValueError("no synchronized pairs: check the topics, the stamps and --max-interval")
        return 130 if interrupted else 0

    return run_cli("psfusion-eval", run)


if __name__ == "__main__":
    sys.exit(main())
