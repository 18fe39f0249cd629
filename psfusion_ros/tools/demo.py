"""``psfusion-demo`` (``make demo``): the main job on generated data, no dataset or checkpoint needed.

It renders a few frames of a synthetic drive, fuses them through the same code path as
``psfusion-fuse``, and writes ``report.json`` and ``preview.png`` (visible | infrared | fused | mask).
Set ``PSFUSION_CHECKPOINT`` to use real weights; otherwise seeded untrained weights are used and
both the console and the report say so.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

from psfusion_ros import __version__
from psfusion_ros.constants import MSRS_CLASSES
from psfusion_ros.pipeline import FusionPipeline
from psfusion_ros.tools.cli import add_runtime_args, run_cli
from psfusion_ros.tools.fuse import fuse_folders
from psfusion_ros.tools.image_io import colorize, read_image, write_image
from psfusion_ros.tools.synthetic import synthetic_frame, temperature_to_uint8

UNTRAINED_SEED = 0


def _label(panel: np.ndarray, text: str) -> np.ndarray:
    panel = panel.copy()
    cv2.rectangle(panel, (0, 0), (8 + 8 * len(text), 18), (0, 0, 0), -1)
    cv2.putText(panel, text, (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (255, 255, 255), 1, cv2.LINE_AA)
    return panel


def make_preview(vi: np.ndarray, ir: np.ndarray, fused: np.ndarray, class_ids: np.ndarray) -> np.ndarray:
    """One RGB strip: visible | infrared | fused | coloured mask, each labelled."""
    panels = [
        _label(vi, "visible"),
        _label(np.repeat(ir[:, :, None], 3, axis=2), "infrared"),
        _label(fused, "fused"),
        _label(colorize(class_ids), "segmentation"),
    ]
    return np.hstack(panels)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="psfusion-demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="demo_out", help="output folder (default demo_out)")
    parser.add_argument("--frames", type=int, default=4, help="frames of the synthetic drive (default 4)")
    parser.add_argument("--size", default="256x320", help="frame size HxW (default 256x320)")
    parser.add_argument("--checkpoint", default=os.environ.get("PSFUSION_CHECKPOINT") or None,
                        help="weights (default: $PSFUSION_CHECKPOINT, else seeded untrained weights)")
    add_runtime_args(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def run() -> int:
        from psfusion_ros.pipeline.resize import parse_size

        height, width = parse_size(args.size)
        out = Path(args.out)
        ir_dir, vi_dir = out / "inputs" / "ir", out / "inputs" / "vi"
        for t in range(args.frames):
            frame = synthetic_frame(t, height, width)
            write_image(vi_dir / f"frame_{t:03d}.png", frame.visible)
            write_image(ir_dir / f"frame_{t:03d}.png", temperature_to_uint8(frame.temperature))

        if args.checkpoint:
            weights = f"checkpoint {args.checkpoint}"
        else:
            weights = f"untrained weights (seed {UNTRAINED_SEED})"
            print("psfusion-demo: NOTE: no checkpoint given (PSFUSION_CHECKPOINT unset): using seeded "
                  "untrained weights, so the fused image and mask show the data path, not PSFusion's quality.")
        pipeline = FusionPipeline.from_checkpoint(
            args.checkpoint, seed=UNTRAINED_SEED, device=args.device, precision=args.precision
        )
        summary = fuse_folders(pipeline, ir_dir, vi_dir, out / "fused", out / "segmentation")
        if summary.failed:
            raise ValueError(f"{len(summary.failed)} demo frames failed: {next(iter(summary.failed.values()))}")

        first = summary.fused[0]
        vi = read_image(vi_dir / first, "RGB")
        ir = read_image(ir_dir / first, "L")
        fused = read_image(out / "fused" / first, "RGB")
        ids = read_image(out / "segmentation" / "ids" / first, "L")
        write_image(out / "preview.png", make_preview(vi, ir, fused, ids))

        counts = np.bincount(ids.ravel(), minlength=len(MSRS_CLASSES))[: len(MSRS_CLASSES)]
        report = {
            "psfusion_ros": __version__,
            "weights": weights,
            "trained": bool(args.checkpoint),
            "device": str(pipeline.device),
            "precision": args.precision,
            "torch": torch.__version__,
            "machine": platform.machine(),
            "pairs": len(summary.fused),
            "frame_size": [height, width],
            "network_size": list(pipeline.size_for(height, width)),
            "seconds": round(summary.seconds, 3),
            "images_per_second": round(summary.images_per_second, 3),
            "timing_ms": {k: round(v, 2) for k, v in summary.timing_ms.items()},
            "preview_class_fractions": {
                name: round(float(c) / ids.size, 4) for name, c in zip(MSRS_CLASSES, counts)
            },
            "outputs": {"fused": "fused/", "segmentation": "segmentation/", "preview": "preview.png"},
        }
        (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
        print(f"psfusion-demo: fused {report['pairs']} frames at {report['images_per_second']} images/s "
              f"on {report['device']} with {weights}; wrote {out / 'report.json'} and {out / 'preview.png'}")
        return 0

    return run_cli("psfusion-demo", run)


if __name__ == "__main__":
    sys.exit(main())
