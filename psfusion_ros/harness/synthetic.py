"""Deterministic synthetic drives: a visible frame and a co-registered thermal frame per time step.

Used by the demo and by tests, so that they need no dataset: a road at dusk with cars and pedestrians
that are dim in the visible image and hot in the thermal one (the case fusion is for).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from psfusion_ros.io.image_files import write_image
from psfusion_ros.pipeline.config import ThermalConfig
from psfusion_ros.pipeline.thermal import ThermalNormalizer

#: MSRS class ids drawn into the labels (road markings are MSRS's ``curve``).
CAR, PERSON, CURVE = 1, 2, 4
#: Lighting of the visible image: ``dusk`` is the demo drive; the others vary the training set.
LIGHTINGS = ("dusk", "night", "glare")
#: Scene temperatures in °C.
AMBIENT_C, ROAD_C, PERSON_C, ENGINE_C, SKY_C = 12.0, 16.0, 34.0, 60.0, -5.0


@dataclass(frozen=True)
class SceneFrame:
    visible: np.ndarray  # (H, W, 3) uint8 RGB
    temperature: np.ndarray  # (H, W) float32 °C, pixel-aligned with ``visible``
    labels: np.ndarray  # (H, W) uint8 MSRS class ids: 0 background, 1 car, 2 person, 4 road marking


def _draw(vi: np.ndarray, th: np.ndarray, shape: str, pts: tuple, colour: tuple, temp: float,
          labels: np.ndarray | None = None, class_id: int = 0) -> None:
    layers = [(vi, colour), (th, temp)] + ([(labels, class_id)] if labels is not None else [])
    for image, value in layers:
        if shape == "rect":
            (x0, y0), (x1, y1) = pts
            cv2.rectangle(image, (x0, y0), (x1, y1), value, -1)
        else:
            centre, axes = pts
            cv2.ellipse(image, centre, axes, 0, 0, 360, value, -1)


def synthetic_frame(t: int, height: int = 256, width: int = 320, seed: int = 0, lighting: str = "dusk") -> SceneFrame:
    """Frame ``t`` of a drive: the same ``(t, size, seed, lighting)`` always gives the same pixels. ``night``
    darkens the visible image (pedestrians vanish into sensor noise), ``glare`` adds an oncoming headlight that
    saturates part of it; the thermal image does not change with either."""
    if lighting not in LIGHTINGS:
        raise ValueError(f"lighting {lighting!r}: expected one of {LIGHTINGS}")
    rng = np.random.default_rng(seed * 100_003 + t)
    h, w = height, width
    horizon = int(h * 0.42)
    vi = np.zeros((h, w, 3), np.uint8)
    th = np.full((h, w), AMBIENT_C, np.float32)
    labels = np.zeros((h, w), np.uint8)

    # Dusk sky and ground.
    sky = np.linspace(70, 25, horizon, dtype=np.float32)[:, None]
    vi[:horizon] = np.stack([sky * 0.8, sky * 0.8, sky * 1.2], -1).clip(0, 255).astype(np.uint8)
    th[:horizon] = SKY_C
    vi[horizon:] = (38, 42, 36)
    road = np.array([[w * 0.44, horizon], [w * 0.56, horizon], [w * 0.98, h], [w * 0.02, h]], np.int32)
    cv2.fillPoly(vi, [road], (55, 55, 58))
    cv2.fillPoly(th, [road], ROAD_C)
    for k in range(6):  # lane dashes scroll towards the camera
        y = horizon + ((k * 23 + t * 7) % (h - horizon))
        half = max(1, int(1 + 3 * (y - horizon) / (h - horizon)))
        cv2.rectangle(vi, (w // 2 - half, y), (w // 2 + half, y + 2 * half), (170, 170, 150), -1)
        cv2.rectangle(labels, (w // 2 - half, y), (w // 2 + half, y + 2 * half), CURVE, -1)

    # Buildings on the horizon: visible texture, cool in thermal.
    for k in range(5):
        x0 = int((k * w / 5 + t * 1.5) % w)
        top = horizon - int(h * (0.12 + 0.05 * (k % 3)))
        _draw(vi, th, "rect", ((x0, top), (x0 + w // 8, horizon)), (60 + 8 * k, 50, 45), AMBIENT_C - 2)

    # Cars: dark in the visible image, hot engines and tyres in thermal.
    for k in range(2):
        cx = int(w * (0.3 + 0.35 * k) + 6 * np.sin(0.3 * t + k))
        cy = int(h * (0.72 - 0.08 * k))
        cw, ch = w // 7, h // 10
        _draw(vi, th, "rect", ((cx - cw, cy - ch), (cx + cw, cy + ch)), (35 + 20 * k, 30, 70), AMBIENT_C + 8,
              labels, CAR)
        _draw(vi, th, "rect", ((cx - cw // 2, cy), (cx + cw // 2, cy + ch)), (30, 28, 60), ENGINE_C, labels, CAR)

    # Pedestrians: almost invisible at dusk, bright in thermal.
    for k in range(3):
        px = int((w * (0.15 + 0.3 * k) + t * (2 + k)) % w)
        py = int(h * 0.62)
        _draw(vi, th, "ellipse", ((px, py), (w // 60 + 2, h // 12)), (45, 44, 42), PERSON_C, labels, PERSON)
        _draw(vi, th, "ellipse", ((px, py - h // 10), (w // 90 + 2, h // 40 + 2)), (50, 46, 44), PERSON_C + 1,
              labels, PERSON)

    th = cv2.GaussianBlur(th, (0, 0), 1.2)  # thermal optics are soft
    th += rng.normal(0.0, 0.25, th.shape).astype(np.float32)  # sensor noise (NETD)
    visible = vi.astype(np.float32)
    if lighting == "night":
        visible *= 0.35
    elif lighting == "glare":  # an oncoming headlight: a saturated disc with a wide halo
        light = np.random.default_rng([seed, t, 7])
        cx, cy = light.uniform(0.2, 0.8) * w, horizon + light.uniform(0.05, 0.25) * h
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        r2 = ((xx - cx) ** 2 + (yy - cy) ** 2) / (0.12 * w) ** 2
        visible += 255.0 * np.exp(-r2)[..., None]
    noisy = visible + rng.normal(0.0, 3.0, vi.shape).astype(np.int16)
    return SceneFrame(noisy.clip(0, 255).astype(np.uint8), th, labels)


def write_msrs_dataset(root: str | Path, train: int = 6, test: int = 2, height: int = 96, width: int = 128,
                       seed: int = 0) -> Path:
    """A tiny dataset in the MSRS layout (``train/`` and ``test/`` with ``vi``, ``ir``, ``label``; no ``bi``,
    ``bd``, ``mask``) from synthetic frames, for training tests and a first try of ``psfusion-train``. The thermal
    image takes some of the visible shading (a daytime scene: sunlit surfaces are warm), so the two correlate
    as real pairs do; the fusion loss's correlation term is erratic on uncorrelated sources."""
    root = Path(root)
    for split, count, offset in (("train", train, 0), ("test", test, 1000)):
        for k in range(count):
            frame = synthetic_frame(offset + 5 * k, height, width, seed)
            name = f"{k:05d}.png"
            write_image(root / split / "vi" / name, frame.visible)
            shading = frame.visible.astype(np.float32) @ np.float32([0.299, 0.587, 0.114])
            thermal = 0.5 * temperature_to_uint8(frame.temperature) + 0.5 * shading
            write_image(root / split / "ir" / name, np.clip(thermal, 0, 255).astype(np.uint8))
            write_image(root / split / "label" / name, frame.labels)
    return root


def node_thermal_uint8(frame: SceneFrame, resolution: float = 1.0) -> np.ndarray:
    """The aligned thermal frame as psfusion_node feeds it to the network (16-bit counts, default percentile
    normalization), in 8 bits; ``resolution`` < 1 renders a lower-resolution thermal camera (blurrier edges)."""
    h, w = frame.temperature.shape
    unit = ThermalNormalizer(ThermalConfig(smoothing=0.0))(thermal_counts(frame, (h, w), np.eye(3)))
    if resolution < 1.0:
        small = cv2.resize(unit, (max(8, int(w * resolution)), max(8, int(h * resolution))),
                           interpolation=cv2.INTER_AREA)
        unit = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    return np.round(np.clip(unit, 0.0, 1.0) * 255.0).astype(np.uint8)


def write_drive_dataset(root: str | Path, train: int, test: int, height: int, width: int, seed: int) -> Path:
    """An MSRS-layout dataset (``train/``, ``test/`` with ``vi``, ``ir``, ``label``) of varied drive frames for
    the demo weights: dusk, night and glare in turn, thermal cameras of 50-100 % of the RGB resolution, thermal
    as the node normalizes it. ``seed`` picks the scenes; the demo drive itself (seed 0) is never in it."""
    root = Path(root)
    rng = np.random.default_rng([seed, 1])
    for split, count, offset in (("train", train, 0), ("test", test, 100_000)):
        for k in range(count):
            frame = synthetic_frame(offset + 7 * k, height, width, seed, LIGHTINGS[k % len(LIGHTINGS)])
            name = f"{k:05d}.png"
            write_image(root / split / "vi" / name, frame.visible)
            write_image(root / split / "ir" / name, node_thermal_uint8(frame, float(rng.uniform(0.5, 1.0))))
            write_image(root / split / "label" / name, frame.labels)
    return root


def temperature_to_uint8(temperature: np.ndarray, low: float = SKY_C, high: float = ENGINE_C) -> np.ndarray:
    """Map °C linearly to 8-bit grey (the 'L' infrared images datasets ship)."""
    scaled = (temperature - low) / (high - low) * 255.0
    return np.clip(scaled, 0, 255).astype(np.uint8)


def misalignment_homography(rgb_size: tuple[int, int], thermal_size: tuple[int, int],
                            rotation_deg: float = 1.5, shift_px: tuple[float, float] = (6.0, -4.0)) -> np.ndarray:
    """A known thermal→RGB homography: scale between the sensors, a small roll and an offset."""
    sx, sy = rgb_size[1] / thermal_size[1], rgb_size[0] / thermal_size[0]
    c, s = np.cos(np.radians(rotation_deg)), np.sin(np.radians(rotation_deg))
    cx, cy = rgb_size[1] / 2, rgb_size[0] / 2
    scale = np.diag([sx, sy, 1.0])
    rotate = np.array([[c, -s, cx - c * cx + s * cy], [s, c, cy - s * cx - c * cy], [0, 0, 1.0]])
    shift = np.array([[1, 0, shift_px[0]], [0, 1, shift_px[1]], [0, 0, 1.0]])
    return shift @ rotate @ scale


def thermal_counts(frame: SceneFrame, thermal_size: tuple[int, int], thermal_to_rgb: np.ndarray) -> np.ndarray:
    """What a misaligned 16-bit radiometric camera would deliver: 100 counts per kelvin above −40 °C."""
    seen = cv2.warpPerspective(frame.temperature, np.linalg.inv(thermal_to_rgb),
                               (thermal_size[1], thermal_size[0]), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE)
    return np.clip((seen + 40.0) * 100.0, 0, 65535).astype(np.uint16)
