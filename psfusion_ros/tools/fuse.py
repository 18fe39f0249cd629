"""``psfusion-fuse``: the paper's test script (``test_Fusion.py``) on two image folders.

Pairs are matched by file name; each fused image is written under the same name, at the original size,
through exactly the reference's steps (the pipeline's ``paper`` resampling, each image shrunk to a multiple
of 32). The pipeline comes from :func:`~psfusion_ros.pipeline.builder.build_pipeline` like everywhere else.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from psfusion_ros.cli import add_pipeline_args, config_from_args, existing_dir, positive_int, run_cli
from psfusion_ros.errors import DataError, PSFusionError
from psfusion_ros.io.image_files import matched_names, read_image, write_image
from psfusion_ros.pipeline.builder import build_pipeline
from psfusion_ros.pipeline.color import colorize
from psfusion_ros.pipeline.config import PipelineConfig
from psfusion_ros.pipeline.fusion_pipeline import FusionPipeline, FusionResult


@dataclass
class FuseSummary:
    """What a folder run did, for the summary line and reports."""

    fused: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    unmatched: list[str] = field(default_factory=list)
    seconds: float = 0.0
    timing_ms: dict[str, float] = field(default_factory=dict)

    @property
    def images_per_second(self) -> float:
        return len(self.fused) / self.seconds if self.seconds > 0 else 0.0


def _write_outputs(name: str, result: FusionResult, out_dir: Path, seg_dir: Path | None) -> None:
    write_image(out_dir / name, result.fused)
    if seg_dir is not None:
        stem = Path(name).stem + ".png"
        write_image(seg_dir / "ids" / stem, result.class_ids)
        write_image(seg_dir / "color" / stem, colorize(result.class_ids))


def fuse_folders(
    pipeline: FusionPipeline,
    ir_dir: Path,
    vi_dir: Path,
    out_dir: Path,
    seg_dir: Path | None = None,
    batch_size: int = 1,
    progress: bool = True,
) -> FuseSummary:
    """Fuse every matched pair; unreadable pairs are reported and skipped, never fatal to the run."""
    names, unmatched = matched_names(Path(ir_dir), Path(vi_dir))
    if not names:
        raise DataError(f"no image file names appear in both {ir_dir} and {vi_dir}")
    summary = FuseSummary(unmatched=unmatched)
    totals: dict[str, float] = {}
    pending: list[tuple[str, np.ndarray, np.ndarray]] = []
    bar = tqdm(total=len(names), unit="pair", disable=not progress, dynamic_ncols=True)
    start = time.perf_counter()

    def flush() -> None:
        if not pending:
            return
        results = pipeline.run_batch([p[1] for p in pending], [p[2] for p in pending])
        for (name, _, _), result in zip(pending, results):
            _write_outputs(name, result, Path(out_dir), seg_dir)
            summary.fused.append(name)
            for k, v in result.timing_ms.items():
                totals[k] = totals.get(k, 0.0) + v
        bar.update(len(pending))
        pending.clear()

    for name in names:
        try:
            vi = read_image(Path(vi_dir) / name, "RGB")
            ir = read_image(Path(ir_dir) / name, "L")
            if vi.shape[:2] != ir.shape:
                raise DataError(f"{name}: infrared {ir.shape[1]}x{ir.shape[0]} and visible "
                                f"{vi.shape[1]}x{vi.shape[0]} differ in size")
            size = pipeline.size_for(*vi.shape[:2])
        except PSFusionError as exc:
            summary.failed[name] = str(exc)
            tqdm.write(f"warning: skipped {exc}", file=sys.stderr)
            bar.update(1)
            continue
        if pending and (len(pending) >= batch_size or pipeline.size_for(*pending[0][1].shape[:2]) != size):
            flush()
        pending.append((name, vi, ir))
    flush()
    bar.close()
    summary.seconds = time.perf_counter() - start
    summary.timing_ms = {k: v / max(len(summary.fused), 1) for k, v in totals.items()}
    return summary


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="psfusion-fuse",
        description="Fuse infrared/visible image folders exactly like PSFusion's test_Fusion.py.",
    )
    parser.add_argument("--ir", required=True, type=existing_dir, help="folder of infrared images")
    parser.add_argument("--vi", required=True, type=existing_dir, help="folder of visible images")
    parser.add_argument("--out", required=True, help="folder for fused images (same file names)")
    parser.add_argument("--seg-out", help="folder for class-id PNGs (ids/) and MSRS-coloured PNGs (color/)")
    parser.add_argument("--batch-size", type=positive_int, default=1, help="pairs per forward pass (same size only)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_pipeline_args(parser)
    return parser


def config_for_folders(args: argparse.Namespace) -> PipelineConfig:
    """The paper's test path (each image shrunk to a multiple of 32, PIL bicubic), flags on top; thermal
    normalization and the engine from ``--params-file`` only when one is given."""
    base = PipelineConfig.from_yaml(args.params_file) if args.params_file else PipelineConfig()
    return config_from_args(args, base.for_image_folders())


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def run() -> int:
        out = Path(args.out)
        if out.exists() and not out.is_dir():
            raise DataError(f"{out} is a file; --out names a folder")
        pipeline = build_pipeline(config_for_folders(args))
        summary = fuse_folders(
            pipeline, Path(args.ir), Path(args.vi), out,
            Path(args.seg_out) if args.seg_out else None, args.batch_size, not args.no_progress,
        )
        if summary.unmatched:
            print(f"warning: {len(summary.unmatched)} files have no partner of the same name and were not fused "
                  f"(e.g. {summary.unmatched[0]})", file=sys.stderr)
        print(f"psfusion-fuse: fused {len(summary.fused)} pairs in {summary.seconds:.1f} s "
              f"({summary.images_per_second:.2f} images/s) on {pipeline.device} -> {args.out}"
              + (f"; {len(summary.failed)} failed" if summary.failed else "")
              + (f"; {len(summary.unmatched)} unmatched" if summary.unmatched else ""))
        return 1 if summary.failed or summary.unmatched else 0

    return run_cli("psfusion-fuse", run)


if __name__ == "__main__":
    sys.exit(main())
