"""``psfusion-calibrate``: the thermal→RGB homography of a rig, from the images (``--auto``) or clicked points.

``--auto`` estimates it from one pair (``--thermal-image/--rgb-image``), from pairs of one rig matched by name
(``--ir/--vi``), or from a recording (``--bag``: pairs synchronized and thermal-normalized as the node does,
a sample spread over the drive); ``--init`` refines an existing calibration. It writes the calibration YAML the
node reads and an overlay PNG to check it at a glance; a low confidence exits 1 and writes nothing.
``--points`` fits clicked correspondences instead.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from psfusion_ros.cli import existing_dir, existing_file, positive_int, run_cli
from psfusion_ros.errors import DataError
from psfusion_ros.io.bags import BagReader
from psfusion_ros.io.image_files import matched_names, read_image, read_thermal_image, write_image
from psfusion_ros.pipeline.auto_registration import CONFIDENT, estimate_registration
from psfusion_ros.pipeline.calibration import (
    estimate_homography,
    project,
    read_points,
    write_auto_calibration,
    write_calibration,
)
from psfusion_ros.pipeline.config import PipelineConfig
from psfusion_ros.pipeline.parameters import default_params_file
from psfusion_ros.pipeline.registration import Registration
from psfusion_ros.pipeline.registration_features import unit_gray
from psfusion_ros.pipeline.sync import ApproximateTimeSync
from psfusion_ros.pipeline.thermal import ThermalNormalizer

#: Pairs a recording or folder contributes by default (spread over it): more scenes, more evidence.
DEFAULT_PAIRS = 12
EXIT_LOW_CONFIDENCE = 1
_TILE = 48


def overlay(rgb: np.ndarray, thermal: np.ndarray, homography: np.ndarray, thermal_pts: np.ndarray,
            rgb_pts: np.ndarray) -> np.ndarray:
    """RGB with the registered thermal image blended in (inferno colours); green o = clicked RGB point,
    red x = thermal point mapped through the homography. Matching edges and marks mean a good fit."""
    warped = Registration("homography", homography=homography).apply(thermal, rgb.shape[:2])
    heat = cv2.applyColorMap(warped.astype(np.uint8), cv2.COLORMAP_INFERNO)[..., ::-1]
    out = cv2.addWeighted(rgb, 0.5, heat, 0.5, 0.0)
    for (x, y) in rgb_pts:
        cv2.circle(out, (int(round(x)), int(round(y))), 5, (0, 255, 0), 1, cv2.LINE_AA)
    for (x, y) in project(homography, thermal_pts):
        cv2.drawMarker(out, (int(round(x)), int(round(y))), (255, 0, 0), cv2.MARKER_TILTED_CROSS, 8, 1)
    return out


def registration_overlay(rgb: np.ndarray, thermal: np.ndarray, homography: np.ndarray) -> np.ndarray:
    """Two panels to judge a registration at a glance: a checkerboard of RGB and registered-thermal tiles (edges
    run on across tile borders when it is right), and the registered thermal frame's edges (cyan) drawn over the
    RGB frame (they lie on the RGB edges when it is right)."""
    rgb = rgb if rgb.ndim == 3 else np.repeat(rgb[:, :, None], 3, axis=2)
    h, w = rgb.shape[:2]
    warped = (Registration("homography", homography=homography).apply(unit_gray(thermal), (h, w)) * 255)
    warped = warped.astype(np.uint8)
    heat = cv2.applyColorMap(warped, cv2.COLORMAP_INFERNO)[..., ::-1]
    tiles = ((np.arange(h)[:, None] // _TILE + np.arange(w)[None] // _TILE) % 2).astype(bool)
    board = np.where(tiles[..., None], heat, rgb)
    edges = cv2.Canny(cv2.GaussianBlur(warped, (0, 0), 1.5), 40, 100) > 0
    lines = (rgb * 0.8).astype(np.uint8)
    lines[edges] = (0, 255, 255)
    return np.hstack([board, np.full((h, 4, 3), 255, np.uint8), lines])


# -- sources of pairs ---------------------------------------------------------------------------------------
def folder_pairs(ir_dir: str, vi_dir: str, count: int) -> tuple[list[np.ndarray], list[np.ndarray], str]:
    names, _ = matched_names(Path(ir_dir), Path(vi_dir))
    if not names:
        raise DataError(f"no image file names appear in both {ir_dir} and {vi_dir}")
    chosen = [names[int(i)] for i in np.unique(np.linspace(0, len(names) - 1, min(count, len(names))).round())]
    thermals = [read_thermal_image(Path(ir_dir) / n) for n in chosen]
    rgbs = [read_image(Path(vi_dir) / n, "RGB") for n in chosen]
    return thermals, rgbs, f"{len(chosen)} of {len(names)} pairs in {ir_dir} + {vi_dir}"


def bag_pairs(args: argparse.Namespace, count: int) -> tuple[list[np.ndarray], list[np.ndarray], str]:
    """Pairs of a recording, paired and normalized as the node does, one per slot of the drive's span."""
    from psfusion_ros.evaluation.sources import Accumulator, BagSource, bag_items

    config = PipelineConfig.from_yaml(args.params_file or default_params_file())
    normalizer = ThermalNormalizer(config.thermal)
    reader = BagReader(args.bag)
    try:
        start, end = reader.span_ns  # log times: the recorder's clock, whatever the cameras stamp
        slot_ns = max((end - start) / count, 1.0)
        chosen: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        source = BagSource(args.thermal_topic, args.rgb_topic, label_topic="")
        sync = ApproximateTimeSync(2, config.sync.queue_size, config.sync.max_interval_ns)
        seen = 0
        for item in tqdm(bag_items(reader, source, config, Accumulator(), sync), desc="pairs", unit="pair"):
            seen += 1
            slot = int(np.clip((item.pair.rgb.received_ns - start) // slot_ns, 0, count - 1))
            thermal = normalizer(item.pair.thermal.pixels)  # every pair, so the range follows the drive
            if slot not in chosen:
                chosen[slot] = (np.asarray(thermal), np.asarray(item.pair.rgb.pixels))
    finally:
        reader.close()
    if not chosen:
        raise DataError(f"{args.bag}: no synchronized pairs on {args.thermal_topic} + {args.rgb_topic}")
    pairs = [chosen[k] for k in sorted(chosen)]
    return [p[0] for p in pairs], [p[1] for p in pairs], f"{len(pairs)} of {seen} pairs in {args.bag}"


def _initial(path: str, thermal_size: tuple[int, int], rgb_size: tuple[int, int]) -> np.ndarray:
    H = Registration.from_file(path).homography_for(rgb_size, thermal_size)
    if H is None:
        raise DataError(f"{path}: a camera_info calibration is no homography; --init needs a homography file")
    return H


def run_auto(args: argparse.Namespace) -> int:
    if args.thermal_image or args.rgb_image:
        if not (args.thermal_image and args.rgb_image):
            raise DataError("--thermal-image and --rgb-image go together")
        thermals = [read_thermal_image(Path(args.thermal_image))]
        rgbs = [read_image(Path(args.rgb_image), "RGB")]
        source = f"{args.thermal_image} + {args.rgb_image}"
    elif args.ir or args.vi:
        if not (args.ir and args.vi):
            raise DataError("--ir and --vi go together")
        thermals, rgbs, source = folder_pairs(args.ir, args.vi, args.pairs)
    elif args.bag:
        if not (args.thermal_topic and args.rgb_topic):
            raise DataError("--bag needs --thermal-topic and --rgb-topic")
        thermals, rgbs, source = bag_pairs(args, args.pairs)
    else:
        raise DataError("--auto needs --thermal-image/--rgb-image, --ir/--vi or --bag")
    initial = _initial(args.init, thermals[0].shape[:2], rgbs[0].shape[:2]) if args.init else None
    print(f"psfusion-calibrate: estimating from {source}" + (f", refining {args.init}" if args.init else ""))
    estimate = estimate_registration(thermals, rgbs, initial=initial)
    print(f"psfusion-calibrate: {estimate.summary()}")
    if estimate.confidence < args.min_confidence:
        why = estimate.reason or f"confidence below --min-confidence {args.min_confidence:g}"
        print(f"psfusion-calibrate: not confident, nothing written: {why}", file=sys.stderr)
        return EXIT_LOW_CONFIDENCE
    write_auto_calibration(args.out, estimate, source, len(thermals))
    out = Path(args.overlay) if args.overlay else Path(args.out).with_suffix(".overlay.png")
    best = int(np.argmax([p.correlation for p in estimate.per_pair])) if estimate.per_pair else 0
    write_image(out, registration_overlay(rgbs[best], thermals[best], estimate.homography))
    print(f"psfusion-calibrate: homography -> {args.out}; check {out} (left: thermal/RGB checkerboard, right: "
          "thermal edges on the RGB frame)")
    return 0


def run_points(args: argparse.Namespace) -> int:
    thermal_pts, rgb_pts = read_points(args.points)
    fit = estimate_homography(thermal_pts, rgb_pts, args.ransac_threshold)
    thermal = read_image(Path(args.thermal), "L") if args.thermal else None
    rgb = read_image(Path(args.rgb), "RGB") if args.rgb else None
    write_calibration(args.out, fit, thermal.shape[:2] if thermal is not None else None,
                      rgb.shape[:2] if rgb is not None else None)
    print(f"psfusion-calibrate: homography from {len(fit.errors_px)} points ({int(fit.inliers.sum())} inliers): "
          f"reprojection RMS {fit.rms_px:.3f} px, max {fit.max_px:.3f} px -> {args.out}")
    if fit.rms_px > 2.0:
        print("psfusion-calibrate: warning: RMS above 2 px: check the clicked pairs in the overlay", file=sys.stderr)
    if thermal is not None and rgb is not None:
        out = Path(args.overlay) if args.overlay else Path(args.out).with_suffix(".overlay.png")
        write_image(out, overlay(rgb, thermal, fit.homography, thermal_pts, rgb_pts))
        print(f"psfusion-calibrate: overlay -> {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="psfusion-calibrate", description=__doc__.splitlines()[0])
    how = parser.add_mutually_exclusive_group(required=True)
    how.add_argument("--auto", action="store_true", help="estimate the homography from the images")
    how.add_argument("--points", help="CSV (thermal_x,thermal_y,rgb_x,rgb_y) or YAML ('pairs' or 'thermal'+'rgb')")
    parser.add_argument("--out", required=True, help="calibration YAML to write (registration.calibration_file)")
    parser.add_argument("--overlay", help="overlay PNG (default: next to --out)")
    auto = parser.add_argument_group("--auto sources (one of)")
    auto.add_argument("--thermal-image", type=existing_file, help="one thermal frame")
    auto.add_argument("--rgb-image", type=existing_file, help="the RGB frame taken with it")
    auto.add_argument("--ir", type=existing_dir, help="thermal frames of one rig (matched to --vi by name)")
    auto.add_argument("--vi", type=existing_dir, help="the RGB frames")
    auto.add_argument("--bag", help="a recording (MCAP or sqlite3 rosbag2)")
    auto.add_argument("--thermal-topic", help="thermal image topic in --bag")
    auto.add_argument("--rgb-topic", help="RGB image topic in --bag")
    auto.add_argument("--params-file", type=existing_file,
                      help="node parameters for pairing and thermal normalization (default: the package's)")
    auto.add_argument("--pairs", type=positive_int, default=DEFAULT_PAIRS,
                      help=f"pairs taken from --ir/--vi or --bag, spread over them (default {DEFAULT_PAIRS})")
    auto.add_argument("--init", type=existing_file, help="refine this calibration YAML instead of searching")
    auto.add_argument("--min-confidence", type=float, default=CONFIDENT,
                      help=f"refuse (exit 1, nothing written) below this confidence (default {CONFIDENT})")
    points = parser.add_argument_group("--points options")
    points.add_argument("--thermal", help="thermal image the points were clicked in (for the overlay)")
    points.add_argument("--rgb", help="RGB image the points were clicked in (for the overlay)")
    points.add_argument("--ransac-threshold", type=float, default=3.0, help="inlier threshold in px (8+ points)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def run() -> int:
        return run_auto(args) if args.auto else run_points(args)

    return run_cli("psfusion-calibrate", run)


if __name__ == "__main__":
    sys.exit(main())
