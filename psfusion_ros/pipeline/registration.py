"""Bring the thermal frame into the RGB camera's pixel grid.

Three models, all reduced to one sampling map (for each RGB pixel, where to read in the thermal frame)
that is computed once per frame size and applied with ``cv2.remap`` on CPU arrays or ``grid_sample`` on
tensors (so the stage can move to the GPU next to the network):

* ``identity``: the rig or dataset is already registered (a size difference is a plain rescale);
* ``homography``: a 3x3 thermal→RGB pixel mapping, e.g. from ``psfusion-calibrate``;
* ``camera_info``: both cameras' intrinsics and distortion, the thermal camera's pose in the RGB camera
  frame and the distance of a fronto-parallel scene plane (parallax is exact only at that depth).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
import yaml

MODES = ("identity", "homography", "camera_info")


@dataclass
class CameraModel:
    """Pinhole intrinsics plus plumb-bob distortion, as in sensor_msgs/CameraInfo (K row-major, D)."""

    width: int
    height: int
    K: np.ndarray  # (3, 3)
    D: np.ndarray = field(default_factory=lambda: np.zeros(5))

    @classmethod
    def from_camera_info(cls, msg: Any) -> CameraModel:
        k = np.asarray(msg.k if hasattr(msg, "k") else msg.K, dtype=np.float64).reshape(3, 3)
        d = np.asarray(msg.d if hasattr(msg, "d") else msg.D, dtype=np.float64)
        if k[0, 0] <= 0 or k[1, 1] <= 0:
            raise ValueError("camera_info has no valid intrinsics (K[0] or K[4] is not positive)")
        return cls(int(msg.width), int(msg.height), k, d if d.size else np.zeros(5))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CameraModel:
        return cls(int(data["width"]), int(data["height"]),
                   np.asarray(data["K"], dtype=np.float64).reshape(3, 3),
                   np.asarray(data.get("D", [0.0] * 5), dtype=np.float64))


def _as_matrix(values: Any, shape: tuple[int, ...], name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.size != int(np.prod(shape)) or not np.isfinite(array).all():
        raise ValueError(f"{name} must be {int(np.prod(shape))} finite numbers, got {array.size}")
    return array.reshape(shape)


class Registration:
    """Thermal → RGB pixel registration; see the module docstring for the three modes."""

    def __init__(
        self,
        mode: str = "identity",
        homography: Any = None,
        rotation: Any = None,
        translation: Any = None,
        plane_depth: float = 10.0,
        thermal_camera: CameraModel | None = None,
        rgb_camera: CameraModel | None = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown registration mode {mode!r}; expected one of {MODES}")
        self.mode = mode
        self.homography = _as_matrix(np.eye(3) if homography is None else homography, (3, 3), "homography")
        if abs(np.linalg.det(self.homography)) < 1e-12:
            raise ValueError("homography is singular")
        self.rotation = _as_matrix(np.eye(3) if rotation is None else rotation, (3, 3), "rotation")
        self.translation = _as_matrix(np.zeros(3) if translation is None else translation, (3,), "translation")
        if plane_depth <= 0:
            raise ValueError("plane_depth must be positive (metres in front of the RGB camera)")
        self.plane_depth = float(plane_depth)
        self.thermal_camera = thermal_camera
        self.rgb_camera = rgb_camera
        self._cache: dict[tuple[tuple[int, int], tuple[int, int]], tuple[np.ndarray, np.ndarray]] = {}
        self._grids: dict[tuple, torch.Tensor] = {}

    # -- construction helpers -------------------------------------------------------------------
    @classmethod
    def from_file(cls, path: str | Path, **overrides: Any) -> Registration:
        """A calibration YAML written by ``psfusion-calibrate`` (or by hand, same keys)."""
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ValueError(f"{path}: cannot read calibration ({exc.__class__.__name__})") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path}: calibration must be a YAML mapping")
        kwargs: dict[str, Any] = {"mode": data.get("mode", "homography")}
        for key in ("homography", "rotation", "translation", "plane_depth"):
            if key in data:
                kwargs[key] = data[key]
        for key, arg in (("thermal_camera", "thermal_camera"), ("rgb_camera", "rgb_camera")):
            if isinstance(data.get(key), dict):
                kwargs[arg] = CameraModel.from_dict(data[key])
        kwargs.update(overrides)
        try:
            return cls(**kwargs)
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}: {exc}") from None

    def set_cameras(self, thermal: CameraModel | None, rgb: CameraModel | None) -> None:
        """Update intrinsics (from camera_info topics); maps are rebuilt only when they change."""
        changed = False
        for name, cam in (("thermal_camera", thermal), ("rgb_camera", rgb)):
            old = getattr(self, name)
            if cam is not None and (old is None or not (np.array_equal(old.K, cam.K) and np.array_equal(old.D, cam.D)
                                                       and (old.width, old.height) == (cam.width, cam.height))):
                setattr(self, name, cam)
                changed = True
        if changed:
            self._cache.clear()
            self._grids.clear()

    @property
    def ready(self) -> bool:
        """False while camera_info mode still waits for both cameras' intrinsics."""
        return self.mode != "camera_info" or (self.thermal_camera is not None and self.rgb_camera is not None)

    # -- the sampling map -----------------------------------------------------------------------
    def maps(self, rgb_size: tuple[int, int], thermal_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """float32 (H_rgb, W_rgb) maps of thermal x and y coordinates for every RGB pixel."""
        key = (tuple(rgb_size), tuple(thermal_size))
        maps = self._cache.get(key)
        if maps is None:  # (the cache may be cleared by new camera_info from another thread meanwhile)
            maps = self._cache[key] = self._build_maps(*key)
        return maps

    def _build_maps(self, rgb_size: tuple[int, int], thermal_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        h, w = rgb_size
        th, tw = thermal_size
        u, v = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
        if self.mode == "identity":
            # Pixel-centre aligned rescale (what cv2.resize does).
            x = (u + 0.5) * (tw / w) - 0.5
            y = (v + 0.5) * (th / h) - 0.5
        elif self.mode == "homography":
            inv = np.linalg.inv(self.homography)
            pts = np.stack([u, v, np.ones_like(u)], axis=-1) @ inv.T
            x, y = pts[..., 0] / pts[..., 2], pts[..., 1] / pts[..., 2]
        else:
            x, y = self._camera_info_maps(u, v)
        return x.astype(np.float32), y.astype(np.float32)

    def _camera_info_maps(self, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if not self.ready:
            raise ValueError("camera_info registration needs both cameras' camera_info (none received yet)")
        rgb, thermal = self.rgb_camera, self.thermal_camera
        assert rgb is not None and thermal is not None
        pixels = np.stack([u.ravel(), v.ravel()], axis=-1).reshape(-1, 1, 2)
        rays = cv2.undistortPoints(pixels, rgb.K, rgb.D).reshape(-1, 2)  # normalized RGB rays
        points_rgb = np.column_stack([rays * self.plane_depth, np.full(len(rays), self.plane_depth)])
        # rotation/translation: pose of the thermal camera in the RGB frame (X_rgb = R X_thermal + t).
        points_thermal = (points_rgb - self.translation) @ self.rotation
        projected, _ = cv2.projectPoints(points_thermal, np.zeros(3), np.zeros(3), thermal.K, thermal.D)
        projected = projected.reshape(u.shape + (2,))
        behind = (points_thermal[:, 2] <= 0).reshape(u.shape)
        projected[behind] = -1e4  # outside the image: sampled as border
        return projected[..., 0], projected[..., 1]

    # -- applying it ----------------------------------------------------------------------------
    def is_passthrough(self, rgb_size: tuple[int, int], thermal_size: tuple[int, int]) -> bool:
        return self.mode == "identity" and tuple(rgb_size) == tuple(thermal_size)

    def apply(self, thermal: np.ndarray | torch.Tensor, rgb_size: tuple[int, int]) -> np.ndarray | torch.Tensor:
        """Thermal frame (H_t, W_t) resampled onto the RGB grid (H, W); pixels it does not cover read 0."""
        thermal_size = tuple(thermal.shape[-2:])
        if self.is_passthrough(rgb_size, thermal_size):
            return thermal
        map_x, map_y = self.maps(rgb_size, thermal_size)
        if isinstance(thermal, torch.Tensor):
            return self._apply_torch(thermal, map_x, map_y)
        if self.mode == "identity":
            return cv2.resize(thermal, (rgb_size[1], rgb_size[0]), interpolation=cv2.INTER_LINEAR)
        return cv2.remap(thermal, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)

    def _apply_torch(self, thermal: torch.Tensor, map_x: np.ndarray, map_y: np.ndarray) -> torch.Tensor:
        th, tw = thermal.shape[-2:]
        dtype = thermal.dtype if thermal.is_floating_point() else torch.float32
        key = (map_x.shape, (th, tw), thermal.device, dtype)
        grid = self._grids.get(key)
        if grid is None:  # built and moved to the device once per geometry, not per frame
            normalized = np.stack([(map_x + 0.5) * 2 / tw - 1, (map_y + 0.5) * 2 / th - 1], axis=-1)
            grid = self._grids[key] = torch.from_numpy(normalized)[None].to(device=thermal.device, dtype=dtype)
        batch = thermal.reshape(1, 1, th, tw).to(dtype)
        out = F.grid_sample(batch, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        return out.reshape(map_x.shape)
