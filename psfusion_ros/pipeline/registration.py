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

import math
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
import yaml

from psfusion_ros.errors import ConfigError, FrameError
from psfusion_ros.pipeline.config import RegistrationConfig
from psfusion_ros.pipeline.parameters import REGISTRATION_MODES as MODES
from psfusion_ros.pipeline.registration_features import scale_matrix

#: Sampling maps kept per (RGB size, thermal size): a camera that changes resolution, not one map per frame.
MAP_CACHE_SIZE = 4
#: Distortion vector lengths OpenCV understands (plumb_bob 5, rational_polynomial 8, equidistant 4, ...).
DISTORTION_LENGTHS = (0, 4, 5, 8, 12, 14)
#: A calibration is rescaled to another frame size only when the aspect ratio agrees to this fraction.
ASPECT_TOLERANCE = 0.01


@dataclass
class CameraModel:
    """Pinhole intrinsics plus plumb-bob distortion, as in sensor_msgs/CameraInfo (K row-major, D)."""

    width: int
    height: int
    K: np.ndarray  # (3, 3)
    D: np.ndarray = field(default_factory=lambda: np.zeros(5))

    def __post_init__(self) -> None:
        k, d = np.asarray(self.K, np.float64), np.asarray(self.D, np.float64).ravel()
        if k.size != 9 or not np.isfinite(k).all():
            raise ConfigError(f"camera intrinsics K must be 9 finite numbers, got {k.size}")
        k = k.reshape(3, 3)
        if not (k[0, 0] > 0 and k[1, 1] > 0):  # also false for NaN
            raise ConfigError(f"camera intrinsics have no valid focal length (fx {k[0, 0]:g}, fy {k[1, 1]:g})")
        if d.size not in DISTORTION_LENGTHS or not np.isfinite(d).all():
            raise ConfigError(f"distortion D must be {', '.join(map(str, DISTORTION_LENGTHS[1:]))} finite numbers, "
                              f"got {d.size}")
        if not (self.width > 0 and self.height > 0):
            raise ConfigError(f"camera size {self.width}x{self.height} is not positive")
        self.K, self.D = k, d if d.size else np.zeros(5)

    @classmethod
    def from_camera_info(cls, msg: Any) -> CameraModel:
        """From a sensor_msgs/CameraInfo; :class:`ConfigError` for intrinsics that cannot be used."""
        try:
            k = np.asarray(msg.k if hasattr(msg, "k") else msg.K, dtype=np.float64)
            d = np.asarray(msg.d if hasattr(msg, "d") else msg.D, dtype=np.float64)
            width, height = int(msg.width), int(msg.height)
        except (AttributeError, TypeError, ValueError) as exc:
            raise ConfigError(f"not a camera_info ({type(exc).__name__})") from None
        return cls(width, height, k, d)


def _as_matrix(values: Any, shape: tuple[int, ...], name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.size != int(np.prod(shape)) or not np.isfinite(array).all():
        raise ConfigError(f"{name} must be {int(np.prod(shape))} finite numbers, got {array.size}")
    return array.reshape(shape)


#: A calibration file is a few hundred bytes; anything much larger is not one (and is not read into memory).
MAX_CALIBRATION_BYTES = 1 << 20
#: Frame sizes a calibration may name (pixels per side).
MAX_SIDE = 100_000


#: YAML aliases a calibration may use (``yaml.safe_dump`` writes one per repeated object, e.g. two equal cameras).
MAX_ALIASES = 32


class _BoundedLoader(yaml.SafeLoader):
    """Safe YAML with a bound on aliases: nested aliases (a "billion laughs" file) stand for more values than
    memory holds once anything walks them; the checks below never walk more than they need, and this refuses
    such a file outright."""

    def compose_node(self, parent: Any, index: Any) -> Any:  # noqa: ANN401 - PyYAML's own signature
        if self.check_event(yaml.AliasEvent):
            self.aliases = getattr(self, "aliases", 0) + 1
            if self.aliases > MAX_ALIASES:
                raise ConfigError(f"more than {MAX_ALIASES} YAML aliases (*name): not a calibration file")
        return super().compose_node(parent, index)


def _numbers(value: Any, count: int, name: str) -> np.ndarray:
    """Exactly ``count`` finite numbers, given flat or as rows (e.g. a 3x3 homography), else a one-line error."""
    flat: list[Any] = []
    rows = value if isinstance(value, (list, tuple)) else None
    if rows is not None and len(rows) <= count:
        for row in rows:
            flat.extend(row if isinstance(row, (list, tuple)) and len(row) <= count else [row])
    if rows is None or len(flat) != count or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in flat):
        raise ConfigError(f"{name} must be {count} finite numbers, got {_describe(value)}")
    return np.asarray(flat, np.float64)


def _size(value: Any, name: str) -> tuple[int, int]:
    if not (isinstance(value, (list, tuple)) and len(value) == 2 and all(
            isinstance(v, int) and not isinstance(v, bool) and 0 < v <= MAX_SIDE for v in value)):
        raise ConfigError(f"{name} must be [height, width], two positive integers up to {MAX_SIDE}, got "
                          f"{_describe(value)}")
    return int(value[0]), int(value[1])


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _camera(value: Any, name: str) -> CameraModel:
    if not isinstance(value, dict):
        raise ConfigError(f"{name} must be a mapping (width, height, K, D), got {_describe(value)}")
    for key in ("width", "height"):
        v = value.get(key)
        if not (isinstance(v, int) and not isinstance(v, bool) and 0 < v <= MAX_SIDE):
            raise ConfigError(f"{name}.{key} must be a positive integer up to {MAX_SIDE}, got {_describe(v)}")
    distortion = value.get("D", [0.0] * 5)
    length = len(distortion) if isinstance(distortion, (list, tuple)) else -1
    if length not in DISTORTION_LENGTHS:
        raise ConfigError(f"{name}.D must be {', '.join(map(str, DISTORTION_LENGTHS[1:]))} finite numbers, got "
                          f"{_describe(distortion)}")
    return CameraModel(value["width"], value["height"], _numbers(value.get("K"), 9, f"{name}.K"),
                       _numbers(distortion, length, f"{name}.D") if length else np.zeros(5))


def read_calibration(path: Path) -> dict[str, Any]:
    """The :class:`Registration` arguments of a calibration YAML, each field checked for type, shape and
    finiteness; :class:`ConfigError` (one line, naming the file and the field) otherwise."""
    try:
        size = path.stat().st_size
        if size > MAX_CALIBRATION_BYTES:
            raise ConfigError(f"{path}: {size} bytes is not a calibration file (at most {MAX_CALIBRATION_BYTES})")
        data = yaml.load(path.read_text(), Loader=_BoundedLoader)  # noqa: S506 - a SafeLoader subclass
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such calibration file") from None
    except ConfigError as exc:
        raise ConfigError(str(exc) if str(exc).startswith(str(path)) else f"{path}: {exc}") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError, RecursionError) as exc:
        raise ConfigError(f"{path}: cannot read calibration ({exc.__class__.__name__})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: calibration must be a YAML mapping (mode, homography, ...)")
    try:
        mode = data.get("mode", "homography")
        if not isinstance(mode, str) or mode not in MODES:
            raise ConfigError(f"mode must be one of {' | '.join(MODES)}, got {_describe(mode)}")
        needed = {"homography": ("homography",), "camera_info": ("rotation", "translation"), "identity": ()}
        missing = [key for key in needed[mode] if key not in data]
        if missing:
            raise ConfigError(f"{mode} calibration has no {', '.join(missing)}")
        out: dict[str, Any] = {"mode": mode}
        for key, count in (("homography", 9), ("rotation", 9), ("translation", 3)):
            if key in data:
                out[key] = _numbers(data[key], count, key)
        if "plane_depth" in data:
            out["plane_depth"] = float(_numbers([data["plane_depth"]], 1, "plane_depth")[0])
        for key in ("thermal_camera", "rgb_camera"):
            if data.get(key) is not None:
                out[key] = _camera(data[key], key)
        if "thermal_size" in data:
            rgb_size = _size(data["rgb_size"], "rgb_size") if data.get("rgb_size") is not None else None
            out["calibrated_sizes"] = (_size(data["thermal_size"], "thermal_size"), rgb_size)
        return out
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


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
        calibrated_sizes: tuple[tuple[int, int], tuple[int, int] | None] | None = None,
    ) -> None:
        if mode not in MODES:
            raise ConfigError(f"unknown registration mode {mode!r}; expected one of {MODES}")
        self.mode = mode
        self.homography = _as_matrix(np.eye(3) if homography is None else homography, (3, 3), "homography")
        if not abs(np.linalg.det(self.homography)) > 1e-12:
            raise ConfigError("homography is singular")
        self.rotation = _as_matrix(np.eye(3) if rotation is None else rotation, (3, 3), "rotation")
        self.translation = _as_matrix(np.zeros(3) if translation is None else translation, (3,), "translation")
        if not float(plane_depth) > 0:
            raise ConfigError("plane_depth must be positive (metres in front of the RGB camera)")
        self.plane_depth = float(plane_depth)
        self.thermal_camera = thermal_camera
        self.rgb_camera = rgb_camera
        #: (thermal (H, W), RGB (H, W) or None) the homography was calibrated at, from the calibration file
        self.calibrated_sizes = calibrated_sizes
        self._cache: OrderedDict[tuple, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._grids: OrderedDict[tuple, torch.Tensor] = OrderedDict()
        self._notes: list[str] = []

    # -- construction helpers -------------------------------------------------------------------
    @classmethod
    def from_config(cls, config: RegistrationConfig) -> Registration:
        """The calibration file when one is named, else the matrices in the parameters."""
        if config.calibration_file:
            return cls.from_file(config.calibration_file)
        return cls(config.mode, homography=config.homography, rotation=config.rotation,
                   translation=config.translation, plane_depth=config.plane_depth)

    @classmethod
    def from_file(cls, path: str | Path) -> Registration:
        """A calibration YAML written by ``psfusion-calibrate`` (or by hand, same keys); every field is checked
        (:func:`read_calibration`), so a bad file is one line, at start-up and as a live change."""
        path = Path(path)
        data = read_calibration(path)
        try:
            return cls(**data)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None

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

    def take_notes(self) -> list[str]:
        """Things worth a log line that happened since the last call (a calibration rescaled to a new size)."""
        notes, self._notes = self._notes, []
        return notes

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
            while len(self._cache) > MAP_CACHE_SIZE:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(key)
        return maps

    def homography_for(self, rgb_size: tuple[int, int], thermal_size: tuple[int, int]) -> np.ndarray | None:
        """The thermal → RGB pixel homography applied to frames of these sizes (identity mode: the plain
        rescale), or None in camera_info mode (distortion makes it no homography)."""
        if self.mode == "identity":
            return scale_matrix(tuple(thermal_size), tuple(rgb_size))
        if self.mode == "homography":
            return self._homography_for(rgb_size, thermal_size)
        return None

    def _homography_for(self, rgb_size: tuple[int, int], thermal_size: tuple[int, int]) -> np.ndarray:
        """The calibrated homography, rescaled when the frames are not the size it was calibrated at."""
        if self.calibrated_sizes is None:
            return self.homography
        cal_thermal, cal_rgb = self.calibrated_sizes
        H = self.homography
        for side, cal, now in (("thermal", cal_thermal, thermal_size), ("RGB", cal_rgb, rgb_size)):
            if cal is None or tuple(cal) == tuple(now):
                continue
            if abs((cal[1] / cal[0]) / (now[1] / now[0]) - 1) > ASPECT_TOLERANCE:
                raise FrameError(f"calibration was made for a {cal[1]}x{cal[0]} {side} frame; this one is "
                                 f"{now[1]}x{now[0]} (another aspect ratio): re-run psfusion-calibrate")
            # pixel-centre aligned scale from the frame's pixels to the calibrated ones (or back for RGB)
            sx, sy = cal[1] / now[1], cal[0] / now[0]
            to_cal = np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1.0]])
            H = H @ to_cal if side == "thermal" else np.linalg.inv(to_cal) @ H
            self._notes.append(f"calibration made at {side} {cal[1]}x{cal[0]} rescaled to {now[1]}x{now[0]}")
        return H

    def _build_maps(self, rgb_size: tuple[int, int], thermal_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        h, w = rgb_size
        th, tw = thermal_size
        u, v = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
        if self.mode == "identity":
            # Pixel-centre aligned rescale (what cv2.resize does).
            x = (u + 0.5) * (tw / w) - 0.5
            y = (v + 0.5) * (th / h) - 0.5
        elif self.mode == "homography":
            inv = np.linalg.inv(self._homography_for(rgb_size, thermal_size))
            pts = np.stack([u, v, np.ones_like(u)], axis=-1) @ inv.T
            x, y = pts[..., 0] / pts[..., 2], pts[..., 1] / pts[..., 2]
        else:
            x, y = self._camera_info_maps(u, v)
        return x.astype(np.float32), y.astype(np.float32)

    def _camera_info_maps(self, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if not self.ready:
            raise FrameError("camera_info registration needs both cameras' camera_info (none received yet)")
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
        if self.mode == "identity" and not isinstance(thermal, torch.Tensor):  # a plain rescale needs no map
            return cv2.resize(thermal, (rgb_size[1], rgb_size[0]), interpolation=cv2.INTER_LINEAR)
        map_x, map_y = self.maps(rgb_size, thermal_size)
        if isinstance(thermal, torch.Tensor):
            return self._apply_torch(thermal, map_x, map_y)
        return cv2.remap(thermal, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)

    def _apply_torch(self, thermal: torch.Tensor, map_x: np.ndarray, map_y: np.ndarray) -> torch.Tensor:
        th, tw = thermal.shape[-2:]
        dtype = thermal.dtype if thermal.is_floating_point() else torch.float32
        key = (map_x.shape, (th, tw), thermal.device, dtype)
        grid = self._grids.get(key)
        if grid is None:  # built and moved to the device once per geometry, not per frame
            normalized = np.stack([(map_x + 0.5) * 2 / tw - 1, (map_y + 0.5) * 2 / th - 1], axis=-1)
            grid = self._grids[key] = torch.from_numpy(normalized)[None].to(device=thermal.device, dtype=dtype)
            while len(self._grids) > MAP_CACHE_SIZE:
                self._grids.popitem(last=False)
        batch = thermal.reshape(1, 1, th, tw).to(dtype)
        out = F.grid_sample(batch, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        return out.reshape(map_x.shape)
