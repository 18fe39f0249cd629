"""Scoring evaluated pairs as the node would fuse them: fusion metrics, segmentation confusion, per-stage timing,
registration checks, and the report (report.json's content) built from them."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from psfusion_ros.errors import PSFusionError
from psfusion_ros.evaluation.sources import Accumulator, EvalItem, FolderSource, folder_items
from psfusion_ros.io.bags import BagWriter, compressed_image_message, image_message
from psfusion_ros.metrics import METRIC_NAMES, ConfusionMatrix, fusion_metrics, grey_255, profile_source
from psfusion_ros.model.psfusion import PSFusion
from psfusion_ros.pipeline.builder import build_pipeline
from psfusion_ros.pipeline.config import PipelineConfig
from psfusion_ros.pipeline.fusion_pipeline import FusionPipeline, FusionResult
from psfusion_ros.pipeline.parameters import default_params_file, load_params_file
from psfusion_ros.pipeline.registration_check import check_registration
from psfusion_ros.pipeline.sync import ApproximateTimeSync

OUT_FUSED, OUT_MASK = "/psfusion/fused/image", "/psfusion/segmentation/mask"
PREVIEWS = 3


def thermal_255(result: FusionResult) -> np.ndarray:
    """The thermal image as the network saw it (normalized, registered) in 0..255, for the metrics."""
    ir = result.thermal
    return ir.astype(np.float32) if ir.dtype == np.uint8 else np.round(ir * 255.0).astype(np.float32)


def process(item: EvalItem, pipeline: FusionPipeline, profile: str, acc: Accumulator,
            out_bag: BagWriter | None, score_fusion: bool = True, compress: bool = False) -> FusionResult | None:
    """Fuse one pair; score it (fusion metrics, confusion matrix), time it and write it to ``out_bag`` (``compress``:
    the fused image as JPEG on ``.../compressed``, the class ids as lossless PNG)."""
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
        hdr = pair.rgb.header
        if compress:
            out_bag.write(OUT_FUSED + "/compressed", compressed_image_message(result.fused, "jpeg", hdr), log_time)
            out_bag.write(OUT_MASK + "/compressed", compressed_image_message(result.class_ids, "png", hdr), log_time)
        else:
            out_bag.write(OUT_FUSED, image_message(result.fused, "rgb8", hdr), log_time)
            out_bag.write(OUT_MASK, image_message(result.class_ids, "mono8", hdr), log_time)
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
    config = PipelineConfig.from_yaml(default_params_file()).for_image_folders().with_params({"device": device})
    pipeline = build_pipeline(config, model=model)
    acc = Accumulator()
    for item in folder_items(FolderSource(ir, vi, labels), acc):
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


def keep_preview(acc: Accumulator, item: EvalItem, result: FusionResult, every: int) -> None:
    if item.index % every or len(acc.previews) >= PREVIEWS:
        return
    rgb = item.pair.rgb.pixels
    scale = min(1.0, 240 / rgb.shape[0])

    def small(image: np.ndarray, interpolation: int = cv2.INTER_AREA) -> np.ndarray:
        return image if scale == 1.0 else cv2.resize(image, None, fx=scale, fy=scale, interpolation=interpolation)

    acc.previews.append((item.index, small(rgb), small(thermal_255(result).astype(np.uint8)),
                         small(result.fused), small(result.class_ids, cv2.INTER_NEAREST)))


def stats(values: list[float]) -> dict[str, float]:
    a = np.asarray(values, np.float64)
    return {"mean": float(a.mean()), "p50": float(np.percentile(a, 50)), "p95": float(np.percentile(a, 95)),
            "max": float(a.max())} if a.size else {}


def build_report(args: Any, config: PipelineConfig, acc: Accumulator,
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
        "timing": {stage: stats(v) for stage, v in acc.timing.items()},
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
            "offset_ms": {**stats(offsets), "abs_max": float(np.max(np.abs(offsets))) if offsets else 0.0},
            "max_interval_ms": config.sync.max_interval * 1e3,
            "queue_size": config.sync.queue_size,
        }
    if acc.confusion is not None:
        report["segmentation"] = acc.confusion.summary()
    warn_px = float(load_params_file(args.params_file or default_params_file()).get("registration.warn_px", 5.0))
    report["registration"] = registration_summary(acc.registration, pipeline.registration.mode, warn_px)
    report["per_pair"] = acc.per_pair
    return report
