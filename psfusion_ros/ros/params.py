"""The node's parameters: names, defaults, meaning and validation, in one table (ROS-free).

``config/psfusion.yaml`` repeats these defaults for users to edit; a test keeps the two identical.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from psfusion_ros.pipeline.engine import DEVICES, PRECISIONS
from psfusion_ros.pipeline.fusion_pipeline import FusionPipeline
from psfusion_ros.pipeline.registration import MODES as REGISTRATION_MODES
from psfusion_ros.pipeline.registration import Registration
from psfusion_ros.pipeline.resize import check_network_size
from psfusion_ros.pipeline.thermal import MODES as THERMAL_MODES
from psfusion_ros.pipeline.thermal import ThermalConfig, ThermalNormalizer

NODE_NAME = "psfusion"
BACKENDS = ("eager",)
RELIABILITIES = ("best_effort", "reliable")
_IDENTITY = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]


@dataclass(frozen=True)
class Param:
    name: str
    default: Any
    description: str
    choices: tuple[str, ...] | None = None


PARAMS: tuple[Param, ...] = (
    Param("checkpoint", "", "PSFusion weights: the official best_model.pth or a psfusion_ros checkpoint"),
    Param("allow_untrained", False, "run seeded untrained weights when checkpoint is empty (demos only)"),
    Param("device", "auto", "auto picks CUDA when available", DEVICES),
    Param("backend", "eager", "inference backend", BACKENDS),
    Param("precision", "fp32", "bf16 is CPU autocast, fp16 needs CUDA", PRECISIONS),
    Param("network_height", 480, "network input height, a multiple of 32"),
    Param("network_width", 640, "network input width, a multiple of 32"),
    Param("sync.queue_size", 10, "messages kept per camera by the ApproximateTime synchronizer"),
    Param("sync.max_interval", 0.05, "largest stamp difference (s) inside a pair; 0 = unbounded"),
    Param("sync.thermal_offset", 0.0, "seconds added to thermal stamps (drivers that stamp late with now())"),
    Param("registration.mode", "identity", "thermal→RGB registration", REGISTRATION_MODES),
    Param("registration.calibration_file", "", "YAML from psfusion-calibrate (overrides the values below)"),
    Param("registration.homography", _IDENTITY, "3x3 thermal→RGB pixel homography, row-major"),
    Param("registration.rotation", _IDENTITY, "camera_info mode: thermal camera orientation in the RGB frame"),
    Param("registration.translation", [0.0, 0.0, 0.0], "camera_info mode: thermal camera position (m) in RGB frame"),
    Param("registration.plane_depth", 10.0, "camera_info mode: distance (m) of the scene plane"),
    Param("thermal.mode", "percentile", "raw thermal normalization", THERMAL_MODES),
    Param("thermal.low_percentile", 1.0, "percentile mapped to black"),
    Param("thermal.high_percentile", 99.0, "percentile mapped to white"),
    Param("thermal.smoothing", 0.8, "weight of the previous range (0 = none) against brightness flicker"),
    Param("thermal.fixed_min", 0.0, "fixed mode: value mapped to black (counts or °C)"),
    Param("thermal.fixed_max", 1.0, "fixed mode: value mapped to white (counts or °C)"),
    Param("thermal.invert", False, "invert (black-hot cameras)"),
    Param("thermal.normalize_8bit", False, "also stretch mono8 thermal (usually already AGC'd by the camera)"),
    Param("qos.reliability", "best_effort", "subscriber reliability; best_effort accepts every publisher",
          RELIABILITIES),
    Param("qos.depth", 5, "subscriber queue depth"),
    Param("publish.color", True, "publish segmentation/color (computed only while subscribed)"),
    Param("publish.overlay", False, "publish fused/overlay: the coloured mask blended over the fused image"),
    Param("publish.overlay_alpha", 0.5, "weight of the mask in fused/overlay"),
    Param("publish.camera_info", True, "republish the RGB camera_info as fused/camera_info"),
    Param("rgb_frame_id", "", "frame_id for outputs when the RGB driver leaves it empty"),
    Param("diagnostics.period", 1.0, "seconds between /diagnostics messages"),
    Param("diagnostics.stale_timeout", 1.0, "seconds without messages before a camera is reported stale"),
    Param("diagnostics.expected_rate", 0.0, "warn when the output rate falls below 80 % of this (Hz); 0 = off"),
)
DEFAULTS: dict[str, Any] = {p.name: p.default for p in PARAMS}


class ConfigError(ValueError):
    """An invalid parameter value; ``str()`` is one line."""


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{'sync': {'queue_size': 10}}`` → ``{'sync.queue_size': 10}`` (how ROS 2 names nested params)."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def load_params_file(path: str | Path, node_name: str = NODE_NAME) -> dict[str, Any]:
    """The flattened ``ros__parameters`` of ``node_name`` in a ROS 2 parameter file."""
    data = yaml.safe_load(Path(path).read_text()) or {}
    for key in (node_name, f"/{node_name}", "/**"):
        if key in data:
            return flatten(data[key].get("ros__parameters", {}))
    raise ConfigError(f"{path}: no ros__parameters for node {node_name!r}")


def validate(values: dict[str, Any]) -> None:
    for p in PARAMS:
        value = values.get(p.name, p.default)
        if p.choices and value not in p.choices:
            raise ConfigError(f"parameter {p.name}={value!r} must be one of {', '.join(p.choices)}")
    try:
        check_network_size((int(values["network_height"]), int(values["network_width"])))
    except ValueError as exc:
        raise ConfigError(f"parameters network_height/network_width: {exc}") from None
    if int(values["sync.queue_size"]) < 1:
        raise ConfigError("parameter sync.queue_size must be at least 1")
    if float(values["sync.max_interval"]) < 0:
        raise ConfigError("parameter sync.max_interval must be >= 0")
    if not values["checkpoint"] and not values["allow_untrained"]:
        raise ConfigError("parameter checkpoint is empty: pass checkpoint:=/path/to/best_model.pth "
                          "(or allow_untrained:=true for a demo with untrained weights)")


def thermal_normalizer(values: dict[str, Any]) -> ThermalNormalizer:
    cfg = ThermalConfig(
        mode=values["thermal.mode"],
        low_percentile=float(values["thermal.low_percentile"]),
        high_percentile=float(values["thermal.high_percentile"]),
        smoothing=float(values["thermal.smoothing"]),
        fixed_min=float(values["thermal.fixed_min"]),
        fixed_max=float(values["thermal.fixed_max"]),
        invert=bool(values["thermal.invert"]),
        normalize_8bit=bool(values["thermal.normalize_8bit"]),
    )
    try:
        return ThermalNormalizer(cfg)
    except ValueError as exc:
        raise ConfigError(f"thermal parameters: {exc}") from None


def registration(values: dict[str, Any]) -> Registration:
    try:
        if values["registration.calibration_file"]:
            return Registration.from_file(values["registration.calibration_file"])
        return Registration(
            values["registration.mode"],
            homography=values["registration.homography"],
            rotation=values["registration.rotation"],
            translation=values["registration.translation"],
            plane_depth=float(values["registration.plane_depth"]),
        )
    except ValueError as exc:
        raise ConfigError(f"registration parameters: {exc}") from None


def pipeline_from_params(values: dict[str, Any]) -> FusionPipeline:
    """The live pipeline: fixed network size, OpenCV resampling, thermal normalization, registration."""
    validate(values)
    try:
        return FusionPipeline.from_checkpoint(
            values["checkpoint"] or None,
            device=values["device"],
            precision=values["precision"],
            network_size=(int(values["network_height"]), int(values["network_width"])),
            resample="fast",
            registration=registration(values),
            thermal=thermal_normalizer(values),
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
