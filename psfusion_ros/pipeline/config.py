"""One configuration object for every entry point: the node, ``psfusion-eval``, ``-bench``, ``-demo``, ``-fuse``.

``PipelineConfig`` is a tree of frozen dataclasses read from the node's parameters (a flat ``{name: value}``
dict or the node's YAML file), so an offline run with the vehicle's parameter file is the vehicle's pipeline.
``NodeConfig`` holds what only the live node uses (QoS, extra topics, diagnostics). Both validate on
construction and raise one-line :class:`~psfusion_ros.errors.ConfigError`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from psfusion_ros.errors import ConfigError
from psfusion_ros.pipeline.parameters import (
    BY_NAME,
    DEFAULTS,
    IDENTITY_3X3,
    NODE_NAME,
    check_value,
    check_values,
    load_params_file,
)


def _check_fields(section: Any, prefix: str) -> None:
    """Each field of a section against its parameter's type, choices and range (one-line errors)."""
    for f in dataclasses.fields(section):
        value = getattr(section, f.name)
        check_value(prefix + f.name, list(value) if isinstance(value, tuple) else value)


@dataclass(frozen=True)
class EngineConfig:
    """Where and how the network runs."""

    device: str = "auto"
    backend: str = "eager"
    precision: str = "fp32"
    engine_path: str = ""
    engine_fallback: bool = False
    cuda_graphs: bool = True

    def __post_init__(self) -> None:
        _check_fields(self, "")
        if self.backend == "tensorrt" and not self.engine_path:
            raise ConfigError("backend tensorrt runs a program built by psfusion-export on this GPU: set engine_path")
        if self.backend == "tensorrt" and self.device == "cpu":
            raise ConfigError("backend tensorrt needs device cuda (or auto on a machine with CUDA)")


@dataclass(frozen=True)
class SyncConfig:
    """ApproximateTime pairing of the two cameras."""

    queue_size: int = 10
    max_interval: float = 0.05
    thermal_offset: float = 0.0

    def __post_init__(self) -> None:
        _check_fields(self, "sync.")

    @property
    def max_interval_ns(self) -> int | None:
        return int(round(self.max_interval * 1e9)) or None

    @property
    def thermal_offset_ns(self) -> int:
        return int(round(self.thermal_offset * 1e9))


@dataclass(frozen=True)
class RegistrationConfig:
    """Thermal → RGB geometry; see :mod:`psfusion_ros.pipeline.registration`."""

    mode: str = "identity"
    calibration_file: str = ""
    homography: tuple[float, ...] = IDENTITY_3X3
    rotation: tuple[float, ...] = IDENTITY_3X3
    translation: tuple[float, ...] = (0.0, 0.0, 0.0)
    plane_depth: float = 10.0

    def __post_init__(self) -> None:
        _check_fields(self, "registration.")


@dataclass(frozen=True)
class ThermalConfig:
    """Raw thermal → [0, 1]; see :mod:`psfusion_ros.pipeline.thermal`."""

    mode: str = "percentile"
    low_percentile: float = 1.0
    high_percentile: float = 99.0
    #: weight of the previous range in the exponential moving average (0 = no smoothing)
    smoothing: float = 0.8
    fixed_min: float = 0.0
    fixed_max: float = 1.0
    #: white-hot output from a black-hot camera
    invert: bool = False
    #: 8-bit thermal is usually already contrast-managed by the camera: pass it through unless True
    normalize_8bit: bool = False

    def __post_init__(self) -> None:
        _check_fields(self, "thermal.")
        if not self.low_percentile < self.high_percentile:
            raise ConfigError(f"parameters thermal.low_percentile ({self.low_percentile:g}) must be below "
                              f"thermal.high_percentile ({self.high_percentile:g})")
        if self.mode == "fixed" and not self.fixed_max > self.fixed_min:
            raise ConfigError(f"parameters thermal.fixed_max ({self.fixed_max:g}) must be above thermal.fixed_min "
                              f"({self.fixed_min:g}) in fixed mode")


@dataclass(frozen=True)
class PipelineConfig:
    """Everything that decides what the pipeline computes for a pair."""

    checkpoint: str = ""
    allow_untrained: bool = False
    #: fixed network input (H, W); None: each frame shrunk to a multiple of 32 (the paper's test script)
    network_size: tuple[int, int] | None = (480, 640)
    resample: str = "fast"
    engine: EngineConfig = field(default_factory=EngineConfig)
    sync: SyncConfig = field(default_factory=SyncConfig)
    registration: RegistrationConfig = field(default_factory=RegistrationConfig)
    thermal: ThermalConfig = field(default_factory=ThermalConfig)

    def __post_init__(self) -> None:
        _validate(self)

    # -- reading ------------------------------------------------------------------------------------
    @classmethod
    def from_params(cls, values: Mapping[str, Any]) -> PipelineConfig:
        """From node parameters (flat ``sync.queue_size`` names or nested dicts); missing ones keep their
        defaults, node-only ones (``qos.*``, ``publish.*`` ...) are ignored, unknown ones are an error."""
        return cls().with_params(values)

    @classmethod
    def from_yaml(cls, path: str | Path, node_name: str = NODE_NAME) -> PipelineConfig:
        """From a ROS 2 parameter file in the layout of the package's ``config/psfusion.yaml``."""
        return cls.from_params(load_params_file(path, node_name))

    def with_params(self, values: Mapping[str, Any]) -> PipelineConfig:
        """A copy with some parameters changed (command-line overrides, ``ros2 param set``)."""
        changes = {k: v for k, v in check_values(values).items() if k in _PIPELINE_PARAMS}
        config = _build({**self.to_params(), **changes})
        if self.network_size is None and not {"network_height", "network_width"} & changes.keys():
            config = dataclasses.replace(config, network_size=None)  # per-frame sizes have no parameter form
        return config

    def replace(self, **changes: Any) -> PipelineConfig:
        """A copy with top-level fields changed (``network_size``, ``resample``, ``engine`` ...)."""
        return dataclasses.replace(self, **changes)

    def for_image_folders(self) -> PipelineConfig:
        """The paper's test path for registered datasets: each image shrunk to a multiple of 32, PIL bicubic,
        identity registration (thermal normalization and the engine stay as configured)."""
        return dataclasses.replace(self, network_size=None, resample="paper", registration=RegistrationConfig())

    # -- writing ------------------------------------------------------------------------------------
    def to_params(self) -> dict[str, Any]:
        """Flat parameter values of this configuration (the inverse of :meth:`from_params`)."""
        out: dict[str, Any] = {"checkpoint": self.checkpoint, "allow_untrained": self.allow_untrained,
                               "resample": self.resample}
        height, width = self.network_size or (DEFAULTS["network_height"], DEFAULTS["network_width"])
        out["network_height"], out["network_width"] = height, width
        for f in dataclasses.fields(EngineConfig):
            out[f.name] = getattr(self.engine, f.name)
        for section in ("sync", "registration", "thermal"):
            for f in dataclasses.fields(getattr(self, section)):
                value = getattr(getattr(self, section), f.name)
                out[f"{section}.{f.name}"] = list(value) if isinstance(value, tuple) else value
        return out

    def summary(self) -> str:
        """One line for logs and reports."""
        size = "per frame" if self.network_size is None else f"{self.network_size[0]}x{self.network_size[1]}"
        reg = self.registration.mode + (f" ({self.registration.calibration_file})"
                                        if self.registration.calibration_file else "")
        thermal = self.thermal.mode + (", inverted" if self.thermal.invert else "")
        return (f"{self.engine.backend} {self.engine.precision} on {self.engine.device}, network {size} "
                f"({self.resample}), registration {reg}, thermal {thermal}")


@dataclass(frozen=True)
class NodeConfig:
    """What only the live node uses: subscriptions, optional outputs, diagnostics."""

    thermal_transport: str = "raw"
    rgb_transport: str = "raw"
    qos_reliability: str = "best_effort"
    qos_depth: int = 5
    publish_color: bool = True
    publish_overlay: bool = False
    publish_overlay_alpha: float = 0.5
    publish_camera_info: bool = True
    publish_compressed: bool = True
    publish_jpeg_quality: int = 90
    rgb_frame_id: str = ""
    diagnostics_period: float = 1.0
    diagnostics_stale_timeout: float = 1.0
    diagnostics_expected_rate: float = 0.0
    registration_monitor: bool = True
    registration_check_period: float = 10.0
    registration_warn_px: float = 5.0
    registration_refine: str = "off"

    @classmethod
    def from_params(cls, values: Mapping[str, Any]) -> NodeConfig:
        checked = check_values(values)
        return cls(**{f.name: checked.get(_node_param(f.name), getattr(cls, f.name))
                      for f in dataclasses.fields(cls)})


def _node_param(field_name: str) -> str:
    """``qos_depth`` → ``qos.depth``, ``rgb_transport`` → ``rgb.transport``; ``rgb_frame_id`` stays."""
    if field_name.endswith("_transport"):
        return field_name.replace("_", ".", 1)
    for section in ("qos", "publish", "diagnostics", "registration"):
        if field_name.startswith(section + "_"):
            return f"{section}.{field_name[len(section) + 1:]}"
    return field_name


NODE_PARAMS = frozenset(_node_param(f.name) for f in dataclasses.fields(NodeConfig))
_PIPELINE_PARAMS = frozenset(BY_NAME) - NODE_PARAMS


def _build(flat: dict[str, Any]) -> PipelineConfig:
    def section(cls: type, prefix: str) -> Any:
        kwargs = {}
        for f in dataclasses.fields(cls):
            value = flat[f"{prefix}{f.name}"]
            kwargs[f.name] = tuple(value) if isinstance(value, list) else value
        return cls(**kwargs)

    return PipelineConfig(
        checkpoint=flat["checkpoint"],
        allow_untrained=flat["allow_untrained"],
        network_size=(flat["network_height"], flat["network_width"]),
        resample=flat["resample"],
        engine=section(EngineConfig, ""),
        sync=section(SyncConfig, "sync."),
        registration=section(RegistrationConfig, "registration."),
        thermal=section(ThermalConfig, "thermal."),
    )


def _validate(config: PipelineConfig) -> None:
    """Top-level values; the sections validated themselves when they were built."""
    for name in ("checkpoint", "allow_untrained", "resample"):
        check_value(name, getattr(config, name))
    if config.network_size is not None:
        if len(config.network_size) != 2:
            raise ConfigError(f"network size must be (height, width), got {config.network_size!r}")
        check_value("network_height", config.network_size[0])
        check_value("network_width", config.network_size[1])
    for name, cls in (("engine", EngineConfig), ("sync", SyncConfig), ("registration", RegistrationConfig),
                      ("thermal", ThermalConfig)):
        if not isinstance(getattr(config, name), cls):
            raise ConfigError(f"PipelineConfig.{name} must be a {cls.__name__}")


def write_params_file(path: str | Path, values: Mapping[str, Any], node_name: str = NODE_NAME) -> Path:
    """A parameter file that applies ``values`` to node ``node_name`` in any namespace."""
    checked = check_values(values)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({f"/**/{node_name}": {"ros__parameters": checked}}, sort_keys=False))
    return path

