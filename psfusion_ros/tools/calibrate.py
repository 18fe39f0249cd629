"""``psfusion-calibrate``: thermal→RGB homography from clicked point pairs, with an overlay to check it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from psfusion_ros.io.image_files import read_image, write_image
from psfusion_ros.pipeline.calibration import estimate_homography, project, read_points, write_calibration
from psfusion_ros.pipeline.registration import Registration
from psfusion_ros.tools.cli import run_cli


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="psfusion-calibrate", description=__doc__.splitlines()[0])
    parser.add_argument("--points", required=True,
                        help="CSV (thermal_x,thermal_y,rgb_x,rgb_y) or YAML ('pairs' or 'thermal'+'rgb')")
    parser.add_argument("--out", required=True, help="calibration YAML to write (registration.calibration_file)")
    parser.add_argument("--thermal", help="thermal image the points were clicked in (for the overlay)")
    parser.add_argument("--rgb", help="RGB image the points were clicked in (for the overlay)")
    parser.add_argument("--overlay", help="overlay PNG (default: next to --out when both images are given)")
    parser.add_argument("--ransac-threshold", type=float, default=3.0, help="inlier threshold in px (8+ points)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def run() -> int:
        thermal_pts, rgb_pts = read_points(args.points)
        fit = estimate_homography(thermal_pts, rgb_pts, args.ransac_threshold)
        thermal = read_image(Path(args.thermal), "L") if args.thermal else None
        rgb = read_image(Path(args.rgb), "RGB") if args.rgb else None
        write_calibration(args.out, fit, thermal.shape[:2] if thermal is not None else None,
                          rgb.shape[:2] if rgb is not None else None)
        print(f"psfusion-calibrate: homography from {len(fit.errors_px)} points ({int(fit.inliers.sum())} inliers): "
              f"reprojection RMS {fit.rms_px:.3f} px, max {fit.max_px:.3f} px -> {args.out}")
        if fit.rms_px > 2.0:
            print("psfusion-calibrate: warning: RMS above 2 px: check the clicked pairs in the overlay",
                  file=sys.stderr)
        if thermal is not None and rgb is not None:
            out = Path(args.overlay) if args.overlay else Path(args.out).with_suffix(".overlay.png")
            write_image(out, overlay(rgb, thermal, fit.homography, thermal_pts, rgb_pts))
            print(f"psfusion-calibrate: overlay -> {out}")
        return 0

    return run_cli("psfusion-calibrate", run)


if __name__ == "__main__":
    sys.exit(main())
