"""``psfusion-eval``: the node's pipeline, offline, on a rosbag2 (MCAP or sqlite3) or an image-folder dataset.

The pipeline is built from the node's parameter file (``--params-file``, default: the package's
``config/psfusion.yaml``) with command-line flags overriding single values, so the numbers are those of the
node on the vehicle. Every synchronized pair is fused (none dropped), scored with the fusion metrics (and mIoU
when labels are given), timed per stage, and written to an output bag that plays next to the original. The run
streams: memory does not grow with the bag, and an interrupted run still leaves a valid report and bag.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from psfusion_ros.errors import DataError, ImageDecodeError, PSFusionError
from psfusion_ros.io.bags import BagReader, BagWriter, header, image_message, stamp_of
from psfusion_ros.io.image_codec import decode_image, decode_rgb, decode_thermal
from psfusion_ros.io.image_files import find_label_dir, label_path, matched_names, read_image, read_label
from psfusion_ros.io.json_files import write_json
from psfusion_ros.metrics import METRIC_NAMES, PROFILES, ConfusionMatrix, fusion_metrics, grey_255, profile_source
from psfusion_ros.model.psfusion import PSFusion
from psfusion_ros.pipeline.builder import build_pipeline
from psfusion_ros.pipeline.config import PipelineConfig
from psfusion_ros.pipeline.fusion_pipeline import FusionPipeline, FusionResult
from psfusion_ros.pipeline.pair import StampedFrame, SyncedPair
from psfusion_ros.pipeline.parameters import default_params_file, load_params_file
from psfusion_ros.pipeline.registration_check import check_registration
from psfusion_ros.pipeline.sync import ApproximateTimeSync
from psfusion_ros.tools.cli import (
    EXIT_INTERRUPTED,
    Interrupts,
    add_pipeline_args,
    config_from_args,
    existing_dir,
    positive_float,
    positive_int,
    prepare_output_dir,
    run_cli,
)

OUT_FUSED, OUT_MASK = "/psfusion/fused/image", "/psfusion/segmentation/mask"
PREVIEWS = 3
FOLDER_EPOCH_NS = 1_700_000_000 * 1_000_000_000


@dataclass
class EvalItem:
    """One synchronized pair and what the evaluation knows about it."""

    index: int
    pair: SyncedPair
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
    blank_thermal: int = 0
    registration: list[dict[str, Any]] = field(default_factory=list)

    def time(self, stage: str, ms: float) -> None:
        self.timing.setdefault(stage, []).append(ms)


def thermal_255(result: FusionResult) -> np.ndarray:
    """The thermal image as the network saw it (normalized, registered) in 0..255, for the metrics."""
    ir = result.thermal
    return ir.astype(np.float32) if ir.dtype == np.uint8 else np.round(ir * 255.0).astype(np.float32)


# -- sources --------------------------------------------------------------------------------------------
def bag_items(reader: BagReader, args: argparse.Namespace, config: PipelineConfig, acc: Accumulator,
              sync: ApproximateTimeSync) -> Iterator[EvalItem]:
    reader.check_topics([args.thermal_topic, args.rgb_topic])
    topics = reader.topics()
    if args.label_topic in topics:
        reader.check_topics([args.label_topic])
    wanted = [args.thermal_topic, args.rgb_topic] + ([args.label_topic] if args.label_topic in topics else [])
    labels: dict[int, np.ndarray] = {}
    count = 0
    offset_ns = config.sync.thermal_offset_ns  # as the node: thermal stamps shifted before pairing
    # A pair waits for the next image message before it is handed out: a recorder writes the label of a frame
    # after the frame, so it is read by then.
    waiting: list[tuple[list, float, float]] = []

    def release() -> Iterator[EvalItem]:
        nonlocal count
        for sets, decode_ms, sync_ms in waiting:
            for matched in sets:
                if args.limit and count >= args.limit:
                    return
                pair = SyncedPair.from_set(matched)
                yield EvalItem(count, pair, label=labels.pop(stamp_of(pair.rgb), None), decode_ms=decode_ms,
                               sync_ms=sync_ms)
                count += 1
        waiting.clear()

    def undecodable(topic: str, log_time: int, reason: str) -> None:
        acc.skipped.append(f"{topic} at log time {log_time}: {reason}")

    for topic, log_time, msg in reader.messages(wanted, skip=undecodable):
        if args.limit and count >= args.limit:
            return
        t0 = time.perf_counter()
        if topic == args.label_topic:
            try:
                labels[stamp_of(msg)] = np.array(decode_image(msg))
            except ImageDecodeError as exc:
                acc.skipped.append(f"{topic} at {stamp_of(msg)}: {exc}")
            if len(labels) > 1000:  # labels that never matched an RGB frame: forget the oldest
                for key in sorted(labels)[:500]:
                    labels.pop(key)
            continue
        yield from release()
        thermal = topic == args.thermal_topic
        try:
            pixels = decode_thermal(msg) if thermal else decode_rgb(msg)
        except ImageDecodeError as exc:
            acc.skipped.append(f"{topic} at {stamp_of(msg)}: {exc}")
            continue
        stamp = stamp_of(msg) + (offset_ns if thermal else 0)
        t1 = time.perf_counter()
        sets = sync.push(0 if thermal else 1, stamp, StampedFrame(pixels, stamp, msg.header, log_time))
        waiting.append((sets, (t1 - t0) * 1e3, (time.perf_counter() - t1) * 1e3))
    waiting.append((sync.flush(), 0.0, 0.0))  # the bag ended: the pending pair cannot improve any more
    yield from release()


def folder_items(args: argparse.Namespace, acc: Accumulator) -> Iterator[EvalItem]:
    names, _ = matched_names(Path(args.ir), Path(args.vi))
    if not names:
        raise DataError(f"no image file names appear in both {args.ir} and {args.vi}")
    label_dir = Path(args.labels) if args.labels else find_label_dir(Path(args.ir).parent)
    for index, name in enumerate(names[: args.limit or None]):
        t0 = time.perf_counter()
        try:
            rgb, thermal = read_image(Path(args.vi) / name, "RGB"), read_image(Path(args.ir) / name, "L")
            label = None
            if label_dir is not None:
                path = label_path(label_dir, name)
                label = read_label(path) if path else None
        except PSFusionError as exc:
            acc.skipped.append(str(exc))
            continue
        stamp = FOLDER_EPOCH_NS + index * 100_000_000
        hdr = header(stamp, "rgb_optical")
        pair = SyncedPair(StampedFrame(thermal, stamp, hdr, stamp), StampedFrame(rgb, stamp, hdr, stamp))
        yield EvalItem(index, pair, name=name, label=label, decode_ms=(time.perf_counter() - t0) * 1e3)


# -- per pair -------------------------------------------------------------------------------------------
def process(item: EvalItem, pipeline: FusionPipeline, profile: str, acc: Accumulator,
            out_bag: BagWriter | None, score_fusion: bool = True) -> FusionResult | None:
    """Fuse one pair; score it (fusion metrics, confusion matrix), time it and write it to ``out_bag``."""
    pair = item.pair
    try:
        result = pipeline(pair.rgb.pixels, pair.thermal.pixels)
    except PSFusionError as exc:  # a pair the node would skip too: reported, the run goes on
        acc.skipped.append(f"pair {item.index}{' ' + item.name if item.name else ''}: {exc}")
        return None
    t0 = time.perf_counter()
    metrics = fusion_metrics(grey_255(result.fused), thermal_255(result), grey_255(pair.rgb.pixels),
                             profile) if score_fusion else None
    t1 = time.perf_counter()
    if out_bag is not None:
        log_time = pair.rgb.received_ns
        out_bag.write(OUT_FUSED, image_message(result.fused, "rgb8", pair.rgb.header), log_time)
        out_bag.write(OUT_MASK, image_message(result.class_ids, "mono8", pair.rgb.header), log_time)
    t2 = time.perf_counter()
    if item.label is not None:
        if acc.confusion is None:
            acc.confusion = ConfusionMatrix(pipeline.num_classes)
        label = item.label if item.label.shape == result.class_ids.shape else cv2.resize(
            item.label, result.class_ids.shape[::-1], interpolation=cv2.INTER_NEAREST)
        acc.confusion.update(result.class_ids, label)
    acc.blank_thermal += result.thermal_blank
    for stage, ms in (("decode", item.decode_ms), ("sync", item.sync_ms), *result.timing_ms.items(),
                      ("metrics", (t1 - t0) * 1e3), ("write", (t2 - t1) * 1e3)):
        acc.time(stage, ms)
    acc.time("pipeline_total", sum(result.timing_ms.values()))
    if metrics is None:
        return result
    row = {"index": item.index, "rgb_stamp_ns": pair.rgb.stamp_ns, "thermal_stamp_ns": pair.thermal.stamp_ns,
           "offset_ms": pair.offset_ns / 1e6,
           "metrics": {k: round(float(v), 6) for k, v in metrics.items()},
           "pipeline_ms": round(sum(result.timing_ms.values()), 3)}
    if item.name:
        row["name"] = item.name
    acc.per_pair.append(row)
    return result


def folder_scores(model: PSFusion, ir: str, vi: str, labels: str | None = None, device: str = "cpu",
                  metrics_limit: int = 0, profile: str = "cddfuse") -> dict[str, Any]:
    """What ``psfusion-eval --ir IR --vi VI [--labels L] --device D`` reports for the weights of ``model``
    (training evaluates with it, so its numbers are this tool's): mIoU over every labelled pair, and the fusion
    metric means over the first ``metrics_limit`` pairs (all when 0), i.e. those of ``--limit metrics_limit``."""
    argv = ["--ir", ir, "--vi", vi, "--out", "unused", "--device", device, "--profile", profile]
    args = build_parser().parse_args(argv + (["--labels", labels] if labels else []))
    pipeline = build_pipeline(eval_config(args), model=model)
    acc = Accumulator()
    for item in folder_items(args, acc):
        process(item, pipeline, profile, acc, None, score_fusion=not metrics_limit or item.index < metrics_limit)
    rows = acc.per_pair
    seg = acc.confusion.summary() if acc.confusion is not None else None
    return {"mIoU": seg["mIoU"] if seg else None, "pairs": len(rows), "skipped": len(acc.skipped),
            "metrics": {k: float(np.mean([r["metrics"][k] for r in rows])) for k in METRIC_NAMES} if rows else {}}


def check_pair_registration(item: EvalItem, pipeline: FusionPipeline, acc: Accumulator) -> None:
    """The live monitor's check on this pair: how far a local refinement moves the thermal footprint."""
    pair = item.pair
    check = check_registration(pipeline.registration, pair.thermal.pixels, pair.rgb.pixels)
    if check is None:
        return
    row = {"index": item.index, "rgb_stamp_ns": pair.rgb.stamp_ns, "residual_px": round(check.residual_px, 3),
           "confidence": round(check.confidence, 3), "seconds": round(check.seconds, 3)}
    if check.reason:
        row["reason"] = check.reason
    acc.registration.append(row)


def registration_summary(rows: list[dict[str, Any]], mode: str, warn_px: float) -> dict[str, Any]:
    """What the checks say about the drive: the verdict the node's monitor would reach, with its numbers."""
    confident = [r["residual_px"] for r in rows if r["confidence"] >= 0.5]
    out: dict[str, Any] = {"mode": mode, "checks": len(rows), "confident_checks": len(confident),
                           "warn_px": warn_px, "per_pair": rows}
    if not rows:
        out["verdict"] = "not checked (camera_info mode or no pairs)"
        return out
    if not confident:
        out["verdict"] = "unknown: no confident check (too little shared structure in the checked pairs)"
        return out
    residual = float(np.median(confident))
    out.update(residual_px={"p50": residual, "p90": float(np.percentile(confident, 90)), "max": float(max(confident))},
               above_warn=sum(r > warn_px for r in confident) / len(confident))
    out["verdict"] = (f"misaligned by ~{residual:.0f} px (psfusion-calibrate --auto --bag ...)" if residual > warn_px
                      else f"aligned (residual {residual:.1f} px <= {warn_px:g} px)")
    return out


def _keep_preview(acc: Accumulator, item: EvalItem, result: FusionResult, every: int) -> None:
    if item.index % every or len(acc.previews) >= PREVIEWS:
        return
    rgb = item.pair.rgb.pixels
    scale = min(1.0, 240 / rgb.shape[0])

    def small(image: np.ndarray, interpolation: int = cv2.INTER_AREA) -> np.ndarray:
        return image if scale == 1.0 else cv2.resize(image, None, fx=scale, fy=scale, interpolation=interpolation)

    acc.previews.append((item.index, small(rgb), small(thermal_255(result).astype(np.uint8)),
                         small(result.fused), small(result.class_ids, cv2.INTER_NEAREST)))


def _stats(values: list[float]) -> dict[str, float]:
    a = np.asarray(values, np.float64)
    return {"mean": float(a.mean()), "p50": float(np.percentile(a, 50)), "p95": float(np.percentile(a, 95)),
            "max": float(a.max())} if a.size else {}


def build_report(args: argparse.Namespace, config: PipelineConfig, acc: Accumulator,
                 sync: ApproximateTimeSync | None, pipeline: FusionPipeline, seconds: float,
                 interrupted: bool) -> dict[str, Any]:
    rows = acc.per_pair
    metrics = {k: float(np.mean([r["metrics"][k] for r in rows])) for k in METRIC_NAMES} if rows else {}
    report: dict[str, Any] = {
        "source": {"bag": args.bag, "thermal_topic": args.thermal_topic, "rgb_topic": args.rgb_topic}
        if args.bag else {"ir": args.ir, "vi": args.vi},
        "checkpoint": config.checkpoint or None, "trained": bool(config.checkpoint),
        "params_file": str(args.params_file or default_params_file()),
        "parameters": config.to_params(), "pipeline": config.summary(),
        "device": str(pipeline.device), "precision": config.engine.precision, "backend": config.engine.backend,
        "network_size": list(pipeline.network_size) if pipeline.network_size else "floor to multiple of 32",
        "profile": args.profile, "profile_source": profile_source(args.profile),
        "pairs": len(acc.per_pair), "interrupted": interrupted,
        "seconds": round(seconds, 3), "pairs_per_second": round(len(acc.per_pair) / seconds, 3) if seconds else 0.0,
        "metrics": metrics,
        "timing": {stage: _stats(v) for stage, v in acc.timing.items()},
        "blank_thermal_pairs": acc.blank_thermal,
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
            "max_interval_ms": config.sync.max_interval * 1e3,
            "queue_size": config.sync.queue_size,
        }
    if acc.confusion is not None:
        report["segmentation"] = acc.confusion.summary()
    warn_px = float(load_params_file(args.params_file or default_params_file()).get("registration.warn_px", 5.0))
    report["registration"] = registration_summary(acc.registration, pipeline.registration.mode, warn_px)
    report["per_pair"] = acc.per_pair
    return report


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="psfusion-eval", description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--bag", help="rosbag2 folder or file (MCAP or sqlite3)")
    source.add_argument("--ir", type=existing_dir, help="image-folder dataset: infrared folder (with --vi)")
    parser.add_argument("--vi", type=existing_dir, help="image-folder dataset: visible folder")
    parser.add_argument("--out", required=True, help="output folder: report.json, report.html, bag/")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier result in --out")
    parser.add_argument("--thermal-topic", default="/thermal/image_raw")
    parser.add_argument("--rgb-topic", default="/rgb/image_raw")
    parser.add_argument("--label-topic", default="/labels/image", help="mono8 class-id labels in the bag")
    parser.add_argument("--labels", type=existing_dir, help="folder of label PNGs (default: label/, Label/ or "
                        "Segmentation_labels/ beside --ir)")
    parser.add_argument("--calibration", help="registration YAML from psfusion-calibrate (overrides "
                        "registration.calibration_file)")
    parser.add_argument("--profile", default="cddfuse", choices=tuple(PROFILES), help="fusion metrics profile")
    parser.add_argument("--limit", type=positive_int, default=0, help="stop after N pairs")
    parser.add_argument("--max-interval", type=float, help="largest stamp spread in a pair, s (sync.max_interval)")
    parser.add_argument("--queue-size", type=positive_int, help="synchronizer queue per topic (sync.queue_size)")
    parser.add_argument("--storage", default="mcap", choices=("mcap", "sqlite3"), help="output bag storage")
    parser.add_argument("--no-html", action="store_true", help="skip report.html")
    parser.add_argument("--registration-checks", type=int, default=20, metavar="N",
                        help="check the registration on N pairs spread over the drive, as the node's monitor does "
                        "(0: off; default 20)")
    live = parser.add_argument_group("live (the bag through the real node; needs --bag)")
    live.add_argument("--live", action="store_true", help="also play the bag into a real psfusion_node with the same "
                      "parameter file: end-to-end latency, drops by reason, node CPU/RSS (OUT/bag = what it published)")
    live.add_argument("--rate", type=positive_float, default=1.0, help="playback speed factor (default 1: recorded)")
    live.add_argument("--rate-sweep", type=_rates, metavar="R1,R2,...", help="also play at these factors to find "
                      "the highest rate the node sustains")
    add_pipeline_args(parser)
    return parser


def _rates(text: str) -> list[float]:
    try:
        rates = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma list of rate factors, e.g. 1,2,4") from None
    if not rates or any(not r > 0 for r in rates):
        raise argparse.ArgumentTypeError("rate factors must be positive")
    return rates


def eval_config(args: argparse.Namespace) -> PipelineConfig:
    """The node's pipeline from the parameter file, single values overridden by flags; image folders take the
    paper's resizing and identity registration (registered datasets) unless flags say otherwise."""
    overrides = {"registration.calibration_file": args.calibration, "sync.max_interval": args.max_interval,
                 "sync.queue_size": args.queue_size}
    base = PipelineConfig.from_yaml(args.params_file or default_params_file())
    base = base.with_params({k: v for k, v in overrides.items() if v is not None})
    return config_from_args(args, base if args.bag else base.for_image_folders())


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.ir and not args.vi:
        parser.error("--ir needs --vi")
    if args.live and not args.bag:
        parser.error("--live plays a bag: give --bag")

    def run() -> int:
        config = eval_config(args)
        if Path(args.out).exists() and not Path(args.out).is_dir():
            raise DataError(f"{args.out} is a file; --out names a folder")
        pipeline = build_pipeline(config)
        reader = BagReader(args.bag) if args.bag else None  # checked before anything is written
        if reader is not None:
            reader.check_topics([args.thermal_topic, args.rgb_topic])
        out = prepare_output_dir(args.out, args.overwrite, "evaluation")
        acc = Accumulator()
        sync = None
        if reader is not None:
            sync = ApproximateTimeSync(2, config.sync.queue_size, config.sync.max_interval_ns)
            total = reader.topics().get(args.rgb_topic, (None, None))[1]
            items = bag_items(reader, args, config, acc, sync)
        else:
            total = len(matched_names(Path(args.ir), Path(args.vi))[0])
            items = folder_items(args, acc)
        total = min(total, args.limit) if (total and args.limit) else total
        every = max((total or 1) // PREVIEWS, 1)
        check_every = max((total or 1) // args.registration_checks, 1) if args.registration_checks > 0 else 0
        stops = Interrupts("psfusion-eval")  # the report is written whatever comes after the first stop
        print(f"psfusion-eval: {config.summary()}; checkpoint {config.checkpoint or 'UNTRAINED'}", file=sys.stderr)
        start, interrupted, failed = time.perf_counter(), False, False
        offline_bag = out / ("offline_bag" if args.live else "bag")
        with BagWriter(offline_bag, args.storage) as out_bag:
            bar = tqdm(total=total, unit="pair", dynamic_ncols=True)
            try:
                with stops.stoppable():
                    for item in items:
                        result = process(item, pipeline, args.profile, acc, out_bag)
                        if result is not None:
                            _keep_preview(acc, item, result, every)
                            if check_every and item.index % check_every == 0:
                                check_pair_registration(item, pipeline, acc)
                        bar.update(1)
            except KeyboardInterrupt:
                interrupted = True
            except PSFusionError:  # a bag corrupt half-way: no output bag that looks complete
                failed = True
                raise
            finally:
                bar.close()
                if reader is not None:
                    reader.close()
                if failed:
                    out_bag.abandon()
        interrupted = interrupted or stops.requested
        report = build_report(args, config, acc, sync, pipeline, time.perf_counter() - start, interrupted)
        report["output_bag"] = str(offline_bag)
        if args.live and not interrupted:
            from psfusion_ros.tools.live_eval import run_live

            try:
                with stops.stoppable():
                    report["live"] = run_live(args, config, out, sync.stats.matched if sync else report["pairs"])
            except KeyboardInterrupt:
                interrupted = report["interrupted"] = True
        write_json(out / "report.json", report)
        if not args.no_html:
            from psfusion_ros.tools.eval_report import write_html

            write_html(out / "report.html", report, acc.previews)
        means = ", ".join(f"{k} {v:.3f}" for k, v in report["metrics"].items())
        seg = report.get("segmentation")
        print(f"psfusion-eval: {report['pairs']} pairs in {report['seconds']:.1f} s "
              f"({report['pairs_per_second']:.2f} pairs/s){' [interrupted]' if interrupted else ''}; {means}"
              + (f"; mIoU {seg['mIoU']:.4f}" if seg else "") + f" -> {out / 'report.json'}")
        reg = report["registration"]
        if reg["checks"]:
            print(f"psfusion-eval: registration ({reg['mode']}): {reg['verdict']}; {reg['confident_checks']} of "
                  f"{reg['checks']} checks confident")
        if acc.skipped:
            print(f"psfusion-eval: warning: {len(acc.skipped)} inputs skipped, e.g. {acc.skipped[0]}", file=sys.stderr)
        if not report["pairs"] and not interrupted:
            raise DataError("no synchronized pairs: check the topics, the stamps and --max-interval")
        return EXIT_INTERRUPTED if interrupted else 0

    return run_cli("psfusion-eval", run)


if __name__ == "__main__":
    sys.exit(main())
