"""``psfusion-demo`` (``make demo``): the main job on generated data, no dataset or checkpoint needed.

Live (default): renders a synthetic dusk drive — 16-bit radiometric thermal from a misaligned, lower
resolution camera plus rgb8 — registers the two cameras from the frames like ``psfusion-calibrate --auto``,
starts ``psfusion_node`` with the package's parameter file, plays the drive into it over ROS 2 and
records what it publishes. ``--offline`` instead fuses generated image folders through ``psfusion-fuse``'s
code path. Both write ``report.json`` and ``preview.png`` (visible | infrared | fused | coloured mask).
Weights: ``--checkpoint`` / ``PSFUSION_CHECKPOINT`` (e.g. the official ``best_model.pth``) wins; otherwise demo
weights learned once on the synthetic drive (:mod:`psfusion_ros.tools.demo_weights`, cached); ``--untrained``
uses seeded untrained weights. The report measures what fusion added on the held-out drive: the pedestrians'
fused intensity between the visible image's (0) and the thermal image's (1), and the mIoU over background,
car and person against the generator's labels.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from psfusion_ros import __version__
from psfusion_ros.cli import positive_float, positive_int, run_cli
from psfusion_ros.constants import MSRS_CLASSES
from psfusion_ros.errors import DataError, PSFusionError
from psfusion_ros.harness.synthetic import CAR, PERSON, SceneFrame, node_thermal_uint8, synthetic_frame
from psfusion_ros.io.image_files import read_image, write_image
from psfusion_ros.io.json_files import write_json
from psfusion_ros.metrics.segmentation import ConfusionMatrix
from psfusion_ros.pipeline.auto_registration import estimate_registration
from psfusion_ros.pipeline.builder import UNTRAINED_SEED, build_pipeline
from psfusion_ros.pipeline.calibration import project, write_auto_calibration
from psfusion_ros.pipeline.color import colorize
from psfusion_ros.pipeline.config import PipelineConfig, ThermalConfig
from psfusion_ros.pipeline.parameters import DEVICES, PRECISIONS
from psfusion_ros.pipeline.registration import Registration
from psfusion_ros.pipeline.resize import parse_size
from psfusion_ros.pipeline.thermal import ThermalNormalizer
from psfusion_ros.tools.calibrate import registration_overlay
from psfusion_ros.tools.demo_weights import demo_weights
from psfusion_ros.tools.fuse import fuse_folders

#: Pairs played in lockstep to measure what the machine sustains before the drive.
WARMUP_PAIRS = 3
UNTRAINED_NOTE = ("--untrained: using seeded untrained weights, so the fused image and mask show the data path, "
                  "not PSFusion's quality.")
DEMO_NOTE = ("demo weights learned on the synthetic drive (not the paper's): they show what fusion does on this "
             "drive; bring the official best_model.pth (PSFUSION_CHECKPOINT) for real scenes.")


#: Classes the demo's mIoU is taken over (the ones the drive draws large enough to segment).
SCORED_CLASSES = (("background", 0), ("car", CAR), ("person", PERSON))


def fusion_evidence(scenes: list[SceneFrame], thermals: list[np.ndarray], fused: list[np.ndarray],
                    class_ids: list[np.ndarray]) -> dict[str, Any]:
    """What fusion added on these frames: mean luma over the generator's pedestrians in the visible, thermal
    (as the network saw it, 8-bit) and fused images, the fused one's position between the first two
    (``pedestrian_fusion_ratio``: 0 = the visible image, 1 = the thermal image), and IoU per scored class."""
    def luma(image: np.ndarray) -> np.ndarray:
        return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float64) if image.ndim == 3 else image.astype(
            np.float64)

    masks = [s.labels == PERSON for s in scenes]
    means = {name: float(np.mean(np.concatenate([luma(im)[m] for im, m in zip(images, masks)])))
             for name, images in (("visible", [s.visible for s in scenes]), ("thermal", thermals),
                                  ("fused", fused))}
    confusion = ConfusionMatrix(len(MSRS_CLASSES))
    for scene, ids in zip(scenes, class_ids):
        confusion.update(ids, scene.labels)
    iou = confusion.iou()[[c for _, c in SCORED_CLASSES]]  # NaN: a class neither drawn nor predicted
    span = means["thermal"] - means["visible"]
    summary = {"frames": len(scenes), "pedestrian_mean_intensity": {k: round(v, 1) for k, v in means.items()},
               "pedestrian_fusion_ratio": round((means["fused"] - means["visible"]) / span, 3) if span else None,
               "iou": {name: None if np.isnan(v) else round(float(v), 3) for (name, _), v in zip(SCORED_CLASSES, iou)},
               "mIoU_background_car_person": round(float(np.nanmean(iou)), 3)}
    if len(scenes) > 1:
        summary["per_frame"] = [fusion_evidence([s], [t], [f], [c]) for s, t, f, c in zip(scenes, thermals, fused,
                                                                                            class_ids)]
    return summary


def evidence_line(evidence: dict[str, Any]) -> str:
    m = evidence["pedestrian_mean_intensity"]
    return (f"pedestrians: visible {m['visible']:.0f}, thermal {m['thermal']:.0f}, fused {m['fused']:.0f} (ratio "
            f"{evidence['pedestrian_fusion_ratio']}: 0 = visible, 1 = thermal); mIoU background/car/person "
            f"{evidence['mIoU_background_car_person']} over {evidence['frames']} held-out frame(s)")


def _label(panel: np.ndarray, text: str) -> np.ndarray:
    panel = panel.copy()
    cv2.rectangle(panel, (0, 0), (8 + 8 * len(text), 18), (0, 0, 0), -1)
    cv2.putText(panel, text, (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (255, 255, 255), 1, cv2.LINE_AA)
    return panel


def make_preview(vi: np.ndarray, ir: np.ndarray, fused: np.ndarray, class_ids: np.ndarray,
                 registration: np.ndarray | None = None, scene: SceneFrame | None = None) -> np.ndarray:
    """One RGB strip: visible | infrared | fused | coloured mask (| registered thermal edges on the RGB frame);
    with ``scene``, each panel names its mean over the pedestrians and the mask its IoU (what fusion added)."""
    names = ["visible", "infrared", "fused"]
    seg = "segmentation"
    if scene is not None:
        e = fusion_evidence([scene], [ir], [fused], [class_ids])
        m = e["pedestrian_mean_intensity"]
        names = [f"{n}: pedestrians {m[k]:.0f}" for n, k in zip(names, ("visible", "thermal", "fused"))]
        seg = f"segmentation: mIoU {e['mIoU_background_car_person']:.2f}"
    panels = [_label(vi, names[0]), _label(np.repeat(ir[:, :, None], 3, axis=2), names[1]),
              _label(fused, names[2]), _label(colorize(class_ids), seg)]
    if registration is not None:
        panels.append(_label(registration, "registration (thermal edges)"))
    return np.hstack(panels)


def _base_report(args: argparse.Namespace, weights: str, device: str) -> dict[str, Any]:
    return {"psfusion_ros": __version__, "mode": "offline" if args.offline else "live ROS 2",
            "weights": weights, "trained": not args.untrained, "device": device,
            "precision": args.precision, "torch": torch.__version__, "machine": platform.machine()}


def _class_fractions(ids: np.ndarray) -> dict[str, float]:
    counts = np.bincount(ids.ravel(), minlength=len(MSRS_CLASSES))[: len(MSRS_CLASSES)]
    return {name: round(float(c) / ids.size, 4) for name, c in zip(MSRS_CLASSES, counts)}


def run_offline(args: argparse.Namespace, out: Path, weights: str) -> dict[str, Any]:
    height, width = parse_size(args.size)
    ir_dir, vi_dir = out / "inputs" / "ir", out / "inputs" / "vi"
    scenes = [synthetic_frame(t, height, width) for t in range(args.frames)]
    for t, frame in enumerate(scenes):
        write_image(vi_dir / f"frame_{t:03d}.png", frame.visible)
        write_image(ir_dir / f"frame_{t:03d}.png", node_thermal_uint8(frame))  # as the node would feed it
    config = PipelineConfig(checkpoint=args.checkpoint or "", allow_untrained=not args.checkpoint).with_params(
        {"device": args.device, "precision": args.precision}).for_image_folders()
    pipeline = build_pipeline(config)
    summary = fuse_folders(pipeline, ir_dir, vi_dir, out / "fused", out / "segmentation")
    if summary.failed:
        raise DataError(f"{len(summary.failed)} demo frames failed: {next(iter(summary.failed.values()))}")
    names = [f"frame_{t:03d}.png" for t in range(len(scenes))]
    evidence = fusion_evidence(scenes, [read_image(ir_dir / n, "L") for n in names],
                               [read_image(out / "fused" / n, "RGB") for n in names],
                               [read_image(out / "segmentation" / "ids" / n, "L") for n in names])
    first = summary.fused[0]
    vi, ir = read_image(vi_dir / first, "RGB"), read_image(ir_dir / first, "L")
    ids = read_image(out / "segmentation" / "ids" / first, "L")
    write_image(out / "preview.png", make_preview(vi, ir, read_image(out / "fused" / first, "RGB"), ids,
                                                  scene=scenes[names.index(first)]))
    return {**_base_report(args, weights, str(pipeline.device)), "pairs": len(summary.fused),
            "frame_size": [height, width], "network_size": list(pipeline.size_for(height, width)),
            "seconds": round(summary.seconds, 3), "images_per_second": round(summary.images_per_second, 3),
            "timing_ms": {k: round(v, 2) for k, v in summary.timing_ms.items()},
            "preview_class_fractions": _class_fractions(ids), "fusion_evidence": evidence}


def _calibrate(player: Any, out: Path) -> tuple[Path, dict[str, Any], np.ndarray]:
    """The rig registered from its frames, as ``psfusion-calibrate --auto`` does: nobody clicks anything."""
    frames = range(0, len(player.scenes), max(1, len(player.scenes) // 3))
    thermals = [player.thermal[k] for k in frames]
    rgbs = [player.scenes[k].visible for k in frames]
    estimate = estimate_registration(thermals, rgbs)
    if not estimate.confident:
        raise PSFusionError(f"the demo rig could not be registered from its frames: {estimate.summary()}")
    path = out / "calibration.yaml"
    write_auto_calibration(path, estimate, "psfusion-demo drive", len(thermals))
    th, tw = player.thermal_size
    corners = np.array([[0, 0], [tw - 1, 0], [0, th - 1], [tw - 1, th - 1]], float)
    naive = corners * [player.rgb_size[1] / tw, player.rgb_size[0] / th]  # "just resize" would put them here
    misalignment = float(np.linalg.norm(project(player.thermal_to_rgb, corners) - naive, axis=1).mean())
    residual = float(np.linalg.norm(project(estimate.homography, corners) - project(player.thermal_to_rgb, corners),
                                    axis=1).mean())
    overlay = registration_overlay(rgbs[0], thermals[0], estimate.homography)
    return path, {"method": "auto (from the frames)", "pairs": len(thermals),
                  "confidence": round(estimate.confidence, 3), "misalignment_corrected_px": round(misalignment, 2),
                  "residual_after_calibration_px": round(residual, 3)}, overlay[:, overlay.shape[1] // 2 + 2:]


def run_live(args: argparse.Namespace, out: Path, weights: str) -> dict[str, Any]:
    from psfusion_ros.harness.drive_player import DrivePlayer
    from psfusion_ros.harness.node_process import NodeProcess, private_ros_env

    rgb_size = parse_size(args.size)
    thermal_size = (rgb_size[0] * 3 // 4, rgb_size[1] * 3 // 4)
    env = private_ros_env()
    player = DrivePlayer(rgb_size, thermal_size, frames=args.frames)
    calibration, registration_report, registration_panel = _calibrate(player, out)
    print(f"psfusion-demo: registered the cameras from the frames (confidence {registration_report['confidence']}): "
          f"corrected {registration_report['misalignment_corrected_px']} px, "
          f"{registration_report['residual_after_calibration_px']} px left against the generator's truth")
    overrides: dict[str, object] = {
        "network_height": rgb_size[0], "network_width": rgb_size[1], "device": args.device,
        "precision": args.precision, "registration.calibration_file": str(calibration.resolve()),
        "diagnostics.period": 0.5,
    }
    overrides.update({"checkpoint": str(Path(args.checkpoint).resolve())} if args.checkpoint
                     else {"allow_untrained": True})
    print(f"psfusion-demo: starting psfusion_node (ROS_DOMAIN_ID={env['ROS_DOMAIN_ID']}, localhost only)")
    node = NodeProcess(overrides, out / "node.log", env=env)
    try:
        if not player.wait_for_node(timeout=120, alive=lambda: node.proc.poll() is None):
            last = (node.output().strip().splitlines() or ["(no output)"])[-1]
            raise PSFusionError(f"psfusion_node did not come up ({last}); see {out / 'node.log'}")
        # Measure what this machine sustains before choosing the camera rate, so the drive is not mostly dropped.
        gaps = player.lockstep(WARMUP_PAIRS)
        sustainable = 1.0 / float(np.median(gaps)) if gaps else float("nan")
        rate = min(args.rate, 0.8 * sustainable) if np.isfinite(sustainable) else args.rate
        cpu_limited = rate < args.rate
        if cpu_limited:
            device = player.last_diagnostics().get("device", args.device)
            print(f"psfusion-demo: this machine fuses about {sustainable:.2f} pairs/s at {rgb_size[0]}x{rgb_size[1]} "
                  f"on {device}: the processor is the limit, so the drive plays at {rate:.2f} Hz instead of "
                  f"{args.rate:g} Hz (a GPU runs this network in milliseconds)")
        count = args.frames * 2
        warmup_fused, first_fused, first_sent = (player.received.fused_count, player.received.fused_count,
                                                 len(player.sent_stamps))
        print(f"psfusion-demo: playing {count} frames ({rgb_size[1]}x{rgb_size[0]} rgb8 + "
              f"{thermal_size[1]}x{thermal_size[0]} mono16) at {rate:.2f} Hz")
        start = time.monotonic()
        player.play(count, rate)
        during = player.last_diagnostics()  # health while the drive was playing
        # ApproximateTime proves a pair optimal only when the next frame arrives, so the last frame
        # played stays unmatched: wait for the one before it (the node finishes the pair it holds).
        last_completable = sorted(player.sent_stamps)[-2]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and (not player.received.stamps
                                               or player.received.stamps[-1] < last_completable):
            player.spin_for(0.2)
        elapsed = time.monotonic() - start
        player.spin_for(1.2)  # one more diagnostics message
        result = player.last_output()
        recent = player.outputs()
        diagnostics = player.last_diagnostics()
    finally:
        exit_code = node.interrupt()
        player.close()
    if result is None:
        raise PSFusionError(f"no fused output received; see {out / 'node.log'}")
    index, fused, ids, color = result
    scene = player.scenes[index]
    registration = Registration.from_file(calibration)

    def seen_thermal(k: int) -> np.ndarray:  # the thermal frame as the network saw it
        unit = registration.apply(ThermalNormalizer(ThermalConfig(smoothing=0.0))(player.thermal[k]), rgb_size)
        return np.round(np.clip(unit, 0, 1) * 255).astype(np.uint8)

    evidence = fusion_evidence([player.scenes[k] for k, *_ in recent], [seen_thermal(k) for k, *_ in recent],
                               [f for _, f, _, _ in recent], [i for _, _, i, _ in recent])
    write_image(out / "preview.png", make_preview(scene.visible, seen_thermal(index), fused, ids,
                                                  registration_panel, scene=scene))
    write_image(out / "fused.png", fused)
    if color is not None:
        write_image(out / "segmentation_color.png", color)
    lat = np.asarray(player.received.latency_ms[first_fused:])  # the drive only, not the warm-up
    r = player.received
    return {
        **_base_report(args, weights, diagnostics.get("device", args.device)),
        "frames_published": len(player.sent_stamps) - first_sent, "frames_fused": r.fused_count - first_fused,
        "warmup_pairs_fused": warmup_fused,
        "rgb_size": list(rgb_size), "thermal_size": list(thermal_size), "thermal_encoding": "mono16",
        "network_size": list(rgb_size), "requested_rate_hz": args.rate, "playback_rate_hz": round(rate, 3),
        "sustainable_rate_hz": round(sustainable, 3), "cpu_limited": cpu_limited,
        "throughput_hz": round((r.fused_count - first_fused) / elapsed, 3),
        "latency_ms": {"p50": round(float(np.percentile(lat, 50)), 1), "p95": round(float(np.percentile(lat, 95)), 1)},
        "sync": {k: int(diagnostics[k]) for k in ("matched pairs", "thermal dropped by sync", "rgb dropped by sync",
                                                  "stale pairs skipped") if k in diagnostics},
        "node_diagnostics_during_playback": {k: during[k] for k in ("level", "message", "inference p50 (ms)",
                                                                    "pipeline p50 (ms)", "backend") if k in during},
        "registration": registration_report,
        "node_exit_code": exit_code,
        "preview_class_fractions": _class_fractions(ids),
        "fusion_evidence": evidence,
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="psfusion-demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="demo_out", help="output folder (default demo_out)")
    parser.add_argument("--offline", action="store_true", help="fuse image folders instead of running the node")
    parser.add_argument("--frames", type=positive_int, default=6, help="distinct frames of the drive (played twice "
                        "live)")
    parser.add_argument("--size", default="256x320", help="RGB frame and network size HxW (default 256x320)")
    parser.add_argument("--rate", type=positive_float, default=2.0, help="live playback rate in Hz (default 2)")
    parser.add_argument("--checkpoint", default=os.environ.get("PSFUSION_CHECKPOINT") or None,
                        help="weights (default: $PSFUSION_CHECKPOINT, else demo weights learned once on the "
                        "synthetic drive and cached)")
    parser.add_argument("--untrained", action="store_true", help="seeded untrained weights: the data path only")
    parser.add_argument("--device", default="auto", choices=DEVICES)
    parser.add_argument("--precision", default="fp32", choices=PRECISIONS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def run() -> int:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        note = None
        if args.checkpoint:
            weights = f"checkpoint {args.checkpoint}"
        elif args.untrained:
            weights, note = f"untrained weights (seed {UNTRAINED_SEED})", UNTRAINED_NOTE
            print(f"psfusion-demo: NOTE: {UNTRAINED_NOTE}")
        else:
            learned = demo_weights(log=lambda line: print(f"psfusion-demo: {line}", flush=True))
            args.checkpoint, weights = str(learned.path), learned.describe()
            note = DEMO_NOTE
        report = run_offline(args, out, weights) if args.offline else run_live(args, out, weights)
        if note:
            report["note"] = note
        write_json(out / "report.json", report, indent=2)
        rate = report.get("throughput_hz", report.get("images_per_second"))
        print(f"psfusion-demo: what fusion added: {evidence_line(report['fusion_evidence'])}")
        print(f"psfusion-demo: {report['mode']}: fused at {rate} frames/s on {report['device']} with {weights}; "
              f"wrote {out / 'report.json'} and {out / 'preview.png'}")
        return 0 if report.get("node_exit_code", 0) == 0 else 1

    return run_cli("psfusion-demo", run)


if __name__ == "__main__":
    sys.exit(main())
