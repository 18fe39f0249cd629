"""Thermal→RGB homography from point correspondences, and the calibration YAML the node reads."""

from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import yaml

from psfusion_ros.errors import ConfigError
from psfusion_ros.pipeline.auto_registration import RegistrationEstimate

MIN_POINTS = 4
#: Point sets whose spread across their main direction is below this fraction of the spread along it are
#: (nearly) collinear: a homography from them is arbitrary in the other direction.
COLLINEAR_RATIO = 0.01


@dataclass
class HomographyFit:
    homography: np.ndarray  # (3, 3), thermal pixel → RGB pixel
    inliers: np.ndarray  # (N,) bool
    errors_px: np.ndarray  # (N,) reprojection error of every correspondence

    @property
    def rms_px(self) -> float:
        return float(np.sqrt(np.mean(self.errors_px[self.inliers] ** 2)))

    @property
    def max_px(self) -> float:
        return float(self.errors_px[self.inliers].max())


def project(homography: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a homography to (N, 2) points."""
    return cv2.perspectiveTransform(np.asarray(points, np.float64).reshape(-1, 1, 2), homography).reshape(-1, 2)


def _degenerate(points: np.ndarray) -> str | None:
    """Why a point set cannot define a homography (None when it can)."""
    if len(np.unique(np.round(points, 6), axis=0)) < len(points):
        return "contain duplicates"
    centred = points - points.mean(axis=0)
    spread = np.linalg.svd(centred, compute_uv=False)
    if not spread[0] > 0 or spread[1] / spread[0] < COLLINEAR_RATIO:
        return "are (nearly) collinear"
    if len(points) == MIN_POINTS:  # a minimal set: no three of the four may be collinear
        for skip in range(MIN_POINTS):
            a, b, c = np.delete(points, skip, axis=0)
            area = abs((b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])) / 2
            if area < COLLINEAR_RATIO * spread[0] ** 2 / 2:
                return "have three of their four points (nearly) on one line"
    return None


def estimate_homography(thermal_pts: np.ndarray, rgb_pts: np.ndarray, ransac_px: float = 3.0) -> HomographyFit:
    """Least squares on all points, or RANSAC (threshold ``ransac_px``) when there are 8 or more."""
    src = np.asarray(thermal_pts, np.float64).reshape(-1, 2)
    dst = np.asarray(rgb_pts, np.float64).reshape(-1, 2)
    if len(src) != len(dst):
        raise ConfigError(f"{len(src)} thermal points but {len(dst)} RGB points")
    if len(src) < MIN_POINTS:
        raise ConfigError(f"a homography needs at least {MIN_POINTS} correspondences, got {len(src)}")
    for name, pts in (("thermal", src), ("RGB", dst)):
        problem = _degenerate(pts)
        if problem:
            raise ConfigError(f"the {name} points {problem}: click points spread over the whole frame")
    method = cv2.RANSAC if len(src) >= 8 else 0
    H, mask = cv2.findHomography(src, dst, method, ransac_px)
    if H is None or not np.isfinite(H).all() or abs(H[2, 2]) < 1e-12:
        raise ConfigError("no homography fits these points (are they collinear or duplicated?)")
    inliers = mask.ravel().astype(bool) if mask is not None else np.ones(len(src), bool)
    if method == cv2.RANSAC and inliers.sum() >= MIN_POINTS:  # refine on the inliers only
        H, _ = cv2.findHomography(src[inliers], dst[inliers], 0)
    errors = np.linalg.norm(project(H, src) - dst, axis=1)
    return HomographyFit(H / H[2, 2], inliers, errors)


def read_points(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Correspondences from CSV (``thermal_x,thermal_y,rgb_x,rgb_y``) or YAML (``pairs`` or ``thermal``/``rgb``)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read points ({exc.strerror})") from None
    try:
        if path.suffix.lower() == ".csv":
            rows = [r for r in text.splitlines() if r.strip() and not r.lstrip().startswith("#")]
            if rows and not rows[0].replace(",", "").replace(".", "").replace("-", "").replace(" ", "").isdigit():
                rows = rows[1:]  # header
            data = np.array([[float(v) for v in r.split(",")] for r in rows], np.float64).reshape(-1, 4)
        else:
            doc = yaml.safe_load(text) or {}
            if "pairs" in doc:
                data = np.asarray(doc["pairs"], np.float64).reshape(-1, 4)
            else:
                data = np.hstack([np.asarray(doc["thermal"], np.float64).reshape(-1, 2),
                                  np.asarray(doc["rgb"], np.float64).reshape(-1, 2)])
    except (ValueError, KeyError, TypeError, AttributeError, IndexError, yaml.YAMLError):
        raise ConfigError(f"{path}: expected rows of thermal_x,thermal_y,rgb_x,rgb_y "
                         "(CSV) or 'pairs'/'thermal'+'rgb' lists (YAML)") from None
    if not np.isfinite(data).all():
        raise ConfigError(f"{path}: points must be finite numbers")
    return data[:, :2], data[:, 2:]


def write_calibration(path: str | Path, fit: HomographyFit, thermal_size: tuple[int, int] | None = None,
                      rgb_size: tuple[int, int] | None = None) -> None:
    """The YAML that ``registration.calibration_file`` and :meth:`Registration.from_file` read."""
    _write(path, fit.homography, {"method": "points", "points": int(len(fit.errors_px)),
                                  "inliers": int(fit.inliers.sum()), "reprojection_rms_px": round(fit.rms_px, 4),
                                  "reprojection_max_px": round(fit.max_px, 4)}, thermal_size, rgb_size)


def write_auto_calibration(path: str | Path, estimate: RegistrationEstimate, source: str, pairs: int) -> None:
    """The same YAML for a homography estimated from the images (``psfusion-calibrate --auto``)."""
    _write(path, estimate.homography, {
        "method": "auto", "source": source, "pairs_used": int(pairs), "confidence": round(estimate.confidence, 3),
        "residual_px": round(float(estimate.residual_px), 3), "correlation": round(estimate.correlation, 4),
        "significance": None if not np.isfinite(estimate.significance) else round(estimate.significance, 2),
    }, estimate.thermal_size, estimate.rgb_size)


def _write(path: str | Path, homography: np.ndarray, fields: dict, thermal_size: tuple[int, int] | None,
           rgb_size: tuple[int, int] | None) -> None:
    doc = {"mode": "homography", "homography": [[float(v) for v in row] for row in homography],
           "direction": "thermal pixel (x, y, 1) -> RGB pixel", **fields,
           "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    if thermal_size:
        doc["thermal_size"] = [int(v) for v in thermal_size]
    if rgb_size:
        doc["rgb_size"] = [int(v) for v in rgb_size]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")  # never a half-written calibration
    tmp.write_text("# psfusion_ros thermal→RGB registration (psfusion-calibrate)\n"
                   + yaml.safe_dump(doc, sort_keys=False))
    os.replace(tmp, path)
