"""Thermal→RGB registration: identity, homography, camera_info, CPU and tensor paths agree."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

from psfusion_ros.errors import ConfigError, FrameError
from psfusion_ros.pipeline.registration import MAP_CACHE_SIZE, CameraModel, Registration


def _scene(h: int, w: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    return (np.sin(x / 7.0) * np.cos(y / 5.0) * 0.5 + 0.5).astype(np.float32)


def test_identity_is_a_passthrough_or_a_rescale() -> None:
    frame = _scene(48, 64)
    reg = Registration("identity")
    assert reg.apply(frame, (48, 64)) is frame
    up = reg.apply(frame, (96, 128))
    assert up.shape == (96, 128)
    assert np.allclose(up, cv2.resize(frame, (128, 96), interpolation=cv2.INTER_LINEAR))


def test_homography_moves_content_where_it_maps() -> None:
    frame = np.zeros((60, 80), np.float32)
    frame[20, 30] = 1.0
    H = np.array([[1.0, 0.0, 12.0], [0.0, 1.0, -5.0], [0.0, 0.0, 1.0]])  # thermal (30,20) → rgb (42,15)
    out = Registration("homography", homography=H).apply(frame, (60, 80))
    assert np.unravel_index(np.argmax(out), out.shape) == (15, 42)
    assert out[:, :12].max() == 0.0  # uncovered RGB pixels read 0


def test_homography_matches_opencv_warp_perspective() -> None:
    frame = _scene(60, 80)
    H = np.array([[1.05, 0.02, 3.0], [-0.01, 0.98, 2.0], [1e-4, -2e-4, 1.0]])
    ours = Registration("homography", homography=H).apply(frame, (70, 90))
    ref = cv2.warpPerspective(frame, H, (90, 70), flags=cv2.INTER_LINEAR)
    assert np.abs(ours[5:-5, 5:-5] - ref[5:-5, 5:-5]).max() < 1e-3


def test_tensor_path_matches_the_cpu_path() -> None:
    frame = _scene(60, 80)
    H = np.array([[1.02, 0.01, 4.0], [0.0, 1.01, -2.0], [0.0, 0.0, 1.0]])
    reg = Registration("homography", homography=H)
    cpu = reg.apply(frame, (64, 96))
    tensor = reg.apply(torch.from_numpy(frame), (64, 96))
    assert isinstance(tensor, torch.Tensor)
    assert np.abs(tensor.numpy()[2:-2, 2:-2] - cpu[2:-2, 2:-2]).max() < 1e-3


def _camera(w: int, h: int, f: float) -> CameraModel:
    return CameraModel(w, h, np.array([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1.0]]), np.zeros(5))


def test_camera_info_mode_equals_the_plane_induced_homography() -> None:
    thermal, rgb = _camera(80, 60, 70.0), _camera(128, 96, 110.0)
    R = cv2.Rodrigues(np.array([0.01, -0.02, 0.005]))[0]
    t = np.array([0.10, 0.02, 0.0])  # thermal camera 10 cm right of the RGB camera
    d = 8.0
    reg = Registration("camera_info", rotation=R, translation=t, plane_depth=d, thermal_camera=thermal,
                       rgb_camera=rgb)
    # X_rgb = R X_t + t, plane z_rgb = d  ⇒  x_t ~ K_t Rᵀ (I - t nᵀ / d) K_rgb⁻¹ x_rgb with n = (0, 0, 1)
    n = np.array([0.0, 0.0, 1.0])
    H_rgb_to_t = thermal.K @ R.T @ (np.eye(3) - np.outer(t, n) / d) @ np.linalg.inv(rgb.K)
    map_x, map_y = reg.maps((96, 128), (60, 80))
    for u, v in [(0, 0), (64, 48), (127, 95), (10, 80)]:
        p = H_rgb_to_t @ np.array([u, v, 1.0])
        assert abs(map_x[v, u] - p[0] / p[2]) < 1e-3 and abs(map_y[v, u] - p[1] / p[2]) < 1e-3


def test_camera_info_mode_waits_for_intrinsics() -> None:
    reg = Registration("camera_info")
    assert not reg.ready
    with pytest.raises(ValueError, match="needs both cameras' camera_info"):
        reg.apply(_scene(60, 80), (96, 128))
    reg.set_cameras(_camera(80, 60, 70.0), _camera(128, 96, 110.0))
    assert reg.ready and reg.apply(_scene(60, 80), (96, 128)).shape == (96, 128)


def test_calibration_file_and_bad_values(tmp_path: Path) -> None:
    path = tmp_path / "calib.yaml"
    path.write_text(yaml.safe_dump({"mode": "homography", "homography": [[1, 0, 5], [0, 1, 0], [0, 0, 1]]}))
    reg = Registration.from_file(path)
    assert reg.mode == "homography" and reg.homography[0, 2] == 5
    path.write_text(yaml.safe_dump({"mode": "homography", "homography": [1, 2, 3]}))
    with pytest.raises(ValueError, match="homography must be 9 finite numbers"):
        Registration.from_file(path)
    with pytest.raises(ConfigError, match="no such calibration file"):
        Registration.from_file(tmp_path / "missing.yaml")
    (tmp_path / "binary.yaml").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError, match="cannot read calibration"):
        Registration.from_file(tmp_path / "binary.yaml")
    path.write_text(yaml.safe_dump({"mode": "homography", "points": 12}))
    with pytest.raises(ConfigError, match="homography calibration has no homography"):
        Registration.from_file(path)
    with pytest.raises(ValueError, match="singular"):
        Registration("homography", homography=np.zeros((3, 3)))
    with pytest.raises(ValueError, match="unknown registration mode"):
        Registration("affine")


def test_map_cache_is_bounded_when_sizes_change_every_frame() -> None:
    reg = Registration("homography", homography=np.array([[1.0, 0, 2], [0, 1.0, 1], [0, 0, 1]]))
    for k in range(3 * MAP_CACHE_SIZE):
        reg.apply(np.zeros((40 + k, 60), np.float32), (48, 64))
        reg.apply(torch.zeros(40 + k, 60), (48, 64))
    assert len(reg._cache) == MAP_CACHE_SIZE and len(reg._grids) == MAP_CACHE_SIZE
    identity = Registration("identity")
    for k in range(20):  # a plain rescale builds no map at all
        identity.apply(np.zeros((40 + k, 60), np.float32), (48, 64))
    assert not identity._cache


@pytest.mark.parametrize(
    ("k", "d", "message"),
    [([float("nan"), 0, 40, 0, 100.0, 30, 0, 0, 1], [0.0] * 5, "finite"),
     ([0.0] * 9, [0.0] * 5, "no valid focal length"),
     ([100.0, 0, 40, 0, 100.0, 30, 0, 0, 1], [0.0] * 3, "distortion D must be"),
     ([100.0, 0, 40, 0, 100.0, 30, 0, 0, 1], [0.1, float("inf"), 0, 0, 0], "distortion D must be")],
)
def test_unusable_camera_info_is_rejected(k: list, d: list, message: str) -> None:
    msg = type("Info", (), {"k": k, "d": d, "width": 80, "height": 60})()
    with pytest.raises(ConfigError, match=message):
        CameraModel.from_camera_info(msg)


def test_calibration_is_rescaled_to_another_frame_size_of_the_same_aspect(tmp_path: Path) -> None:
    H = np.array([[2.0, 0.02, 6.0], [-0.01, 2.0, -4.0], [0.0, 0.0, 1.0]])  # thermal 120x160 → RGB 240x320
    path = tmp_path / "rig.yaml"
    path.write_text(yaml.safe_dump({"mode": "homography", "homography": H.tolist(), "thermal_size": [120, 160],
                                    "rgb_size": [240, 320]}))
    reg = Registration.from_file(path)
    frame = _scene(120, 160)
    at_calibration = reg.apply(frame, (240, 320))
    assert reg.take_notes() == []
    half = cv2.resize(frame, (80, 60), interpolation=cv2.INTER_AREA)  # the camera streams at half resolution
    rescaled = reg.apply(half, (240, 320))
    assert "rescaled to 80x60" in reg.take_notes()[0]
    inner = (slice(20, -20), slice(20, -20))
    assert np.abs(rescaled[inner] - at_calibration[inner]).mean() < 0.02  # the same geometry, coarser pixels
    with pytest.raises(FrameError, match="another aspect ratio"):
        reg.apply(np.zeros((60, 60), np.float32), (240, 320))


GOOD = {"mode": "homography", "homography": np.eye(3).tolist(), "thermal_size": [120, 160], "rgb_size": [240, 320]}
CAMERA = {"width": 160, "height": 120, "K": [100.0, 0, 80, 0, 100.0, 60, 0, 0, 1], "D": [0.0] * 5}


@pytest.mark.parametrize(
    ("change", "message"),
    [({"mode": ["homography"]}, "mode must be one of identity | homography | camera_info"),
     ({"mode": "affine"}, "mode must be one of"),
     ({"homography": "[[1, 0, 0], [0, 1, 0], [0, 0, 1]]"}, "homography must be 9 finite numbers"),
     ({"homography": [[1, 0, 0], [0, 1, 0]]}, "homography must be 9 finite numbers"),
     ({"homography": [[1, 0, 0], [0, 1, 0], [0, 0, ".nan"]]}, "homography must be 9 finite numbers"),
     ({"homography": [[1, 0, 0], [0, 1, 0], [0, 0, float("inf")]]}, "homography must be 9 finite numbers"),
     ({"homography": [[1, 0, 0], [0, 1, 0], [0, 0, True]]}, "homography must be 9 finite numbers"),
     ({"homography": [[1, 0, 0], [0, 1, 0], [0, 0, {"a": 1}]]}, "homography must be 9 finite numbers"),
     ({"homography": [[0] * 3] * 3}, "homography is singular"),
     ({"thermal_size": [0, 160]}, "thermal_size must be [height, width]"),
     ({"thermal_size": [120.5, 160]}, "thermal_size must be [height, width]"),
     ({"thermal_size": "120x160"}, "thermal_size must be [height, width]"),
     ({"rgb_size": [240, float("nan")]}, "rgb_size must be [height, width]"),
     ({"rgb_size": [240, 10**9]}, "rgb_size must be [height, width]"),
     ({"mode": "camera_info", "rotation": np.eye(3).tolist(), "translation": "0 0 0"},
      "translation must be 3 finite numbers"),
     ({"plane_depth": "far"}, "plane_depth must be 1 finite numbers"),
     ({"plane_depth": -1.0}, "plane_depth must be positive"),
     ({"thermal_camera": [1, 2]}, "thermal_camera must be a mapping"),
     ({"thermal_camera": {**CAMERA, "width": "160"}}, "thermal_camera.width must be a positive integer"),
     ({"rgb_camera": {**CAMERA, "K": [1, 2, 3]}}, "rgb_camera.K must be 9 finite numbers"),
     ({"rgb_camera": {**CAMERA, "D": [0.1, 0.2]}}, "rgb_camera.D must be 4, 5, 8, 12, 14 finite numbers")],
)
def test_every_calibration_field_is_checked_with_a_one_line_reason(tmp_path: Path, change: dict,
                                                                  message: str) -> None:
    path = tmp_path / "rig.yaml"
    path.write_text(yaml.safe_dump({**GOOD, **change}).replace("'.nan'", ".nan"))
    with pytest.raises(ConfigError) as caught:
        Registration.from_file(path)
    text = str(caught.value)
    assert text.startswith(f"{path}: ") and message in text and "\n" not in text, text


def test_a_yaml_alias_bomb_and_an_oversized_file_are_refused_before_they_allocate(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.yaml"
    lines = ["a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 12)]  # 9^12 numbers if expanded
    bomb.write_text("\n".join(lines) + "\nmode: homography\nhomography: *a11\n")
    with pytest.raises(ConfigError, match="YAML aliases"):
        Registration.from_file(bomb)
    big = tmp_path / "big.yaml"
    big.write_text("mode: homography\n# " + "x" * (2 << 20) + "\n")
    with pytest.raises(ConfigError, match="is not a calibration file"):
        Registration.from_file(big)


def test_a_complete_calibration_with_cameras_loads(tmp_path: Path) -> None:
    path = tmp_path / "rig.yaml"
    path.write_text(yaml.safe_dump({**GOOD, "mode": "camera_info", "rotation": np.eye(3).tolist(),
                                    "translation": [0.1, 0, 0], "plane_depth": 5, "thermal_camera": CAMERA,
                                    "rgb_camera": {**CAMERA, "D": [0.0] * 8}, "method": "points"}))
    reg = Registration.from_file(path)
    assert reg.mode == "camera_info" and reg.plane_depth == 5.0 and reg.rgb_camera.D.size == 8
    assert reg.calibrated_sizes == ((120, 160), (240, 320))
