"""``psfusion-calibrate`` recovers a known homography from noisy clicks, outliers included."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
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


# -- --auto: from the images -----------------------------------------------------------------------------
def _rig_pair(t: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from psfusion_ros.harness.synthetic import misalignment_homography, synthetic_frame, thermal_counts

    truth = misalignment_homography((192, 256), (144, 192), rotation_deg=2.5, shift_px=(10.0, -7.0))
    frame = synthetic_frame(t, 192, 256)
    return thermal_counts(frame, (144, 192), truth), frame.visible, truth


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=300)


def _error(path: Path, truth: np.ndarray) -> float:
    from psfusion_ros.harness.rig_warps import corner_error_px

    H = Registration.from_file(path).homography_for((192, 256), (144, 192))
    return corner_error_px(H, truth, (144, 192), (192, 256))


def test_auto_from_one_pair_writes_what_the_node_reads_and_an_overlay(tmp_path: Path) -> None:
    thermal, rgb, truth = _rig_pair()
    Image.fromarray(thermal).save(tmp_path / "t.png")
    Image.fromarray(rgb).save(tmp_path / "r.png")
    out = tmp_path / "cal" / "rig.yaml"
    result = _run("--auto", "--thermal-image", str(tmp_path / "t.png"), "--rgb-image", str(tmp_path / "r.png"),
                  "--out", str(out))
    assert result.returncode == 0, result.stderr
    doc = yaml.safe_load(out.read_text())
    assert doc["method"] == "auto" and doc["confidence"] >= 0.5 and doc["pairs_used"] == 1
    assert doc["thermal_size"] == [144, 192] and doc["rgb_size"] == [192, 256]
    assert _error(out, truth) < 2.5
    overlay = np.array(Image.open(out.with_suffix(".overlay.png")))
    assert overlay.shape == (192, 2 * 256 + 4, 3)


def test_auto_from_folders_and_refining_an_existing_calibration(tmp_path: Path) -> None:
    for k in range(3):
        thermal, rgb, truth = _rig_pair(3 * k)
        for folder, image in (("ir", thermal), ("vi", rgb)):
            (tmp_path / folder).mkdir(exist_ok=True)
            Image.fromarray(image).save(tmp_path / folder / f"{k:03d}.png")
    out = tmp_path / "rig.yaml"
    result = _run("--auto", "--ir", str(tmp_path / "ir"), "--vi", str(tmp_path / "vi"), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert yaml.safe_load(out.read_text())["pairs_used"] == 3 and _error(out, truth) < 2.5
    # --init: a calibration 8 px off is pulled back
    off = tmp_path / "off.yaml"
    off.write_text(yaml.safe_dump({"mode": "homography", "homography": (np.array([[1, 0, 8.0], [0, 1, 0], [0, 0, 1]])
                                                                        @ truth).tolist()}))
    refined = tmp_path / "refined.yaml"
    result = _run("--auto", "--ir", str(tmp_path / "ir"), "--vi", str(tmp_path / "vi"), "--init", str(off),
                  "--out", str(refined))
    assert result.returncode == 0, result.stderr
    assert "refining" in result.stdout and _error(refined, truth) < 2.5


@pytest.mark.parametrize("compressed", [False, True], ids=["raw", "compressed"])
def test_auto_from_a_bag_pairs_frames_as_the_node(tmp_path: Path, compressed: bool) -> None:
    """A recording of the misaligned rig: mono16 thermal at its own resolution, thermal stamps 4 ms late; raw, or
    image_transport's compressed topics (16-bit PNG thermal, JPEG RGB)."""
    from psfusion_ros.io.bags import BagWriter, compressed_image_message, header, image_message

    bag = tmp_path / "drive"
    suffix = "/compressed" if compressed else ""
    with BagWriter(bag) as writer:
        for k in range(4):
            thermal, rgb, truth = _rig_pair(3 * k)
            stamp = 1_700_000_000_000_000_000 + k * 200_000_000
            th_hdr, rgb_hdr = header(stamp + 4_000_000, "thermal"), header(stamp, "rgb")
            th_msg = compressed_image_message(thermal, "png", th_hdr) if compressed else \
                image_message(thermal, "mono16", th_hdr)
            rgb_msg = compressed_image_message(rgb, "jpeg", rgb_hdr) if compressed else \
                image_message(rgb, "rgb8", rgb_hdr)
            writer.write("/thermal/image_raw" + suffix, th_msg, stamp + 4_000_000)
            writer.write("/rgb/image_raw" + suffix, rgb_msg, stamp)
    out = tmp_path / "rig.yaml"
    result = _run("--auto", "--bag", str(bag), "--thermal-topic", "/thermal/image_raw" + suffix, "--rgb-topic",
                  "/rgb/image_raw" + suffix, "--pairs", "3", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "3 of 4 pairs" in result.stdout
    assert _error(out, truth) < 2.5


def test_auto_refuses_without_writing_anything(tmp_path: Path) -> None:
    _, rgb, _ = _rig_pair()
    Image.fromarray(rgb).save(tmp_path / "r.png")
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (144, 192), dtype=np.uint8)).save(tmp_path / "n.png")
    Image.fromarray(np.full((144, 192), 90, np.uint8)).save(tmp_path / "c.png")
    out = tmp_path / "rig.yaml"
    out.write_text("previous calibration\n")
    for thermal in ("n.png", "c.png"):
        result = _run("--auto", "--thermal-image", str(tmp_path / thermal), "--rgb-image", str(tmp_path / "r.png"),
                      "--out", str(out))
        assert result.returncode == 1, result.stdout + result.stderr
        assert "not confident, nothing written" in result.stderr and "Traceback" not in result.stderr
        assert out.read_text() == "previous calibration\n"
        assert not out.with_suffix(".overlay.png").exists()
    result = _run("--auto", "--thermal-image", str(tmp_path / "n.png"), "--out", str(out))
    assert result.returncode == 2 and "go together" in result.stderr
    result = _run("--auto", "--out", str(out))
    assert result.returncode == 2 and "--auto needs" in result.stderr
