"""``psfusion-calibrate`` recovers a known homography from noisy clicks, outliers included."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from psfusion_ros.pipeline.calibration import estimate_homography, project
from psfusion_ros.pipeline.registration import Registration

CLI = str(Path(sys.executable).parent / "psfusion-calibrate")
# A thermal camera (160x120) seen from an RGB camera (320x240): scale, shift, a little rotation and keystone.
TRUE_H = np.array([[1.95, 0.06, 12.0], [-0.04, 1.92, 8.0], [1.2e-4, -0.8e-4, 1.0]])


def _grid_error(homography: np.ndarray) -> float:
    xs, ys = np.meshgrid(np.linspace(0, 159, 17), np.linspace(0, 119, 13))
    pts = np.column_stack([xs.ravel(), ys.ravel()])
    return float(np.linalg.norm(project(homography, pts) - project(TRUE_H, pts), axis=1).max())


def _points(n: int, noise_px: float, outliers: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    thermal = rng.uniform([5, 5], [155, 115], size=(n, 2))
    rgb = project(TRUE_H, thermal) + rng.normal(0.0, noise_px, size=(n, 2))
    rgb[:outliers] += rng.choice([-40.0, 40.0], size=(outliers, 2))  # mis-clicks
    return thermal, rgb


def test_exact_points_give_the_exact_homography() -> None:
    thermal, rgb = _points(4, 0.0, 0)
    fit = estimate_homography(thermal, rgb)
    assert _grid_error(fit.homography) < 1e-3 and fit.rms_px < 1e-4


def test_cli_recovers_known_homography_from_noisy_points_with_outliers(tmp_path: Path) -> None:
    thermal_pts, rgb_pts = _points(24, 0.5, 3)
    csv = tmp_path / "clicks.csv"
    csv.write_text("thermal_x,thermal_y,rgb_x,rgb_y\n"
                   + "\n".join(",".join(f"{v:.3f}" for v in (*t, *r)) for t, r in zip(thermal_pts, rgb_pts)))
    y, x = np.mgrid[0:120, 0:160]
    thermal_img = ((np.sin(x / 9) * np.cos(y / 7) + 1) * 120).astype(np.uint8)
    rgb_img = np.zeros((240, 320, 3), np.uint8)
    Image.fromarray(thermal_img).save(tmp_path / "thermal.png")
    Image.fromarray(rgb_img).save(tmp_path / "rgb.png")
    out = tmp_path / "rig.yaml"
    result = subprocess.run([CLI, "--points", str(csv), "--out", str(out), "--thermal", str(tmp_path / "thermal.png"),
                             "--rgb", str(tmp_path / "rgb.png")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "24 points (21 inliers)" in result.stdout and "reprojection RMS" in result.stdout
    doc = yaml.safe_load(out.read_text())
    H = np.asarray(doc["homography"])
    assert _grid_error(H) < 1.5  # worst case over the whole frame (corners extrapolate), 0.5 px clicks
    assert 0.3 < doc["reprojection_rms_px"] < 1.0 and doc["inliers"] == 21
    assert Registration.from_file(out).mode == "homography"  # the node reads it as is
    overlay = np.asarray(Image.open(out.with_suffix(".overlay.png")))
    assert overlay.shape == (240, 320, 3) and overlay.max() > 0


def test_too_few_or_unreadable_points_are_one_line_errors(tmp_path: Path) -> None:
    few = tmp_path / "few.yaml"
    few.write_text(yaml.safe_dump({"thermal": [[0, 0], [1, 0], [0, 1]], "rgb": [[0, 0], [2, 0], [0, 2]]}))
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\nc,d\n")
    for path, message in ((few, "at least 4 correspondences, got 3"), (bad, "expected rows of")):
        result = subprocess.run([CLI, "--points", str(path), "--out", str(tmp_path / "x.yaml")],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 2 and message in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
