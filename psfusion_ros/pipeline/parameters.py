"""The node's parameters in one table: name, default, meaning, choices, range, and whether it may change live.

This table is the single source for the node's declarations (with ``ros2 param describe`` ranges and
choices), for ``config/psfusion.yaml`` and for the README's parameter table; tests keep all three equal.
ROS-free and torch-free: the CLIs read parameter files through it too.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from psfusion_ros.errors import ConfigError

NODE_NAME = "psfusion"
DEVICES = ("auto", "cpu", "cuda")
BACKENDS = ("eager", "compile", "tensorrt")
PRECISIONS = ("fp32", "bf16", "fp16")
RESAMPLERS = ("fast", "paper")
REGISTRATION_MODES = ("identity", "homography", "camera_info")
THERMAL_MODES = ("none", "minmax", "percentile", "fixed")
RELIABILITIES = ("best_effort", "reliable")
REFINE_MODES = ("off", "auto")
#: image_transport's names: raw sensor_msgs/Image on the base topic, CompressedImage on ``<base>/compressed``
TRANSPORTS = ("raw", "compressed")
#: Largest network side: 2048x2048 already needs ~20 GB of activations in fp32.
MAX_NETWORK_SIDE = 2048
IDENTITY_3X3 = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
#: Names ROS itself may set on any node; never reported as unknown.
ROS_OWN_PARAMETERS = ("use_sim_time", "start_type_description_service", "qos_overrides.")


@dataclass(frozen=True)
class Param:
    """One parameter. The type is the default's type (bool, int, float, str, or a list of floats)."""

    name: str
    default: Any
    description: str
    choices: tuple[str, ...] | None = None
    #: inclusive bounds (None: open); ints may also give a step (network sizes: multiples of 32)
    low: float | None = None
    high: float | None = None
    step: int = 0
    #: may change while the node runs (``ros2 param set``); the others are read-only after start-up
    dynamic: bool = False

    @property
    def kind(self) -> str:
        if isinstance(self.default, bool):
            return "bool"
        if isinstance(self.default, int):
            return "int"
        if isinstance(self.default, float):
            return "float"
        if isinstance(self.default, str):
            return "str"
        return "float_list"

    @property
    def constraints(self) -> str:
        """What values are valid, in words (``additional_constraints`` and the README)."""
        if self.choices:
            return "one of " + " | ".join(self.choices)
        parts = []
        if self.kind == "float_list":
            parts.append(f"{len(self.default)} numbers")
        if self.low is not None or self.high is not None:
            low = "" if self.low is None else f"{self.low:g} <= "
            high = "" if self.high is None else f" <= {self.high:g}"
            parts.append(f"{low}value{high}")
        if self.step:
            parts.append(f"a multiple of {self.step}")
        return ", ".join(parts)


_F = "float"
PARAMS: tuple[Param, ...] = (
    Param("checkpoint", "", "PSFusion weights: the official best_model.pth or a psfusion_ros checkpoint"),
    Param("allow_untrained", False, "run seeded untrained weights when checkpoint is empty (demos only)"),
    Param("device", "auto", "auto picks CUDA when available", DEVICES),
    Param("backend", "eager", "inference engine: eager PyTorch, a psfusion-export artifact (compile) or TensorRT",
          BACKENDS),
    Param("precision", "fp32", "numeric precision of the network (bf16: CPUs with AVX-512 BF16; fp16: CUDA)",
          PRECISIONS),
    Param("engine_path", "", "artifact from psfusion-export (compile, tensorrt backends)"),
    Param("engine_fallback", False, "run eager fp32 with an ERROR diagnostic when the artifact cannot be used"),
    Param("cuda_graphs", True, "on CUDA, replay the network as one captured CUDA graph per frame (no effect on a CPU)"),
    Param("network_height", 480, "network input height", low=32, high=MAX_NETWORK_SIDE, step=32),
    Param("network_width", 640, "network input width", low=32, high=MAX_NETWORK_SIDE, step=32),
    Param("resample", "fast", "resizing in and out of the network: OpenCV (fast) or the paper's PIL bicubic",
          RESAMPLERS),
    Param("sync.queue_size", 10, "messages kept per camera by the ApproximateTime synchronizer", low=1, high=1000),
    Param("sync.max_interval", 0.05, "largest stamp difference (s) inside a pair; 0 = unbounded", low=0.0,
          high=10.0, dynamic=True),
    Param("sync.thermal_offset", 0.0, "seconds added to thermal stamps (drivers that stamp late with now())",
          low=-10.0, high=10.0, dynamic=True),
    Param("registration.mode", "identity", "thermal→RGB registration", REGISTRATION_MODES, dynamic=True),
    Param("registration.calibration_file", "", "YAML from psfusion-calibrate (overrides the values below)",
          dynamic=True),
    Param("registration.homography", list(IDENTITY_3X3), "3x3 thermal→RGB pixel homography, row-major",
          dynamic=True),
    Param("registration.rotation", list(IDENTITY_3X3), "camera_info mode: thermal camera orientation in the "
          "RGB frame", dynamic=True),
    Param("registration.translation", [0.0, 0.0, 0.0], "camera_info mode: thermal camera position (m) in RGB frame",
          dynamic=True),
    Param("registration.plane_depth", 10.0, "camera_info mode: distance (m) of the scene plane", low=0.01,
          high=1e6, dynamic=True),
    Param("registration.monitor", True, "check the homography on recent pairs and report residual and confidence",
          dynamic=True),
    Param("registration.check_period", 10.0, "seconds between registration checks (low priority, off the inference "
          "thread)", low=0.2, high=3600.0, dynamic=True),
    Param("registration.warn_px", 5.0, "WARN when several confident checks agree the thermal frame is off by more "
          "than this (RGB px)", low=0.5, high=1000.0, dynamic=True),
    Param("registration.refine", "off", "auto: apply what agreeing checks find, at most 4 px per step",
          REFINE_MODES, dynamic=True),
    Param("thermal.mode", "percentile", "raw thermal normalization", THERMAL_MODES, dynamic=True),
    Param("thermal.low_percentile", 1.0, "percentile mapped to black", low=0.0, high=100.0, dynamic=True),
    Param("thermal.high_percentile", 99.0, "percentile mapped to white", low=0.0, high=100.0, dynamic=True),
    Param("thermal.smoothing", 0.8, "weight of the previous range (0 = none) against brightness flicker", low=0.0,
          high=0.99, dynamic=True),
    Param("thermal.fixed_min", 0.0, "fixed mode: value mapped to black (counts or °C)", dynamic=True),
    Param("thermal.fixed_max", 1.0, "fixed mode: value mapped to white (counts or °C)", dynamic=True),
    Param("thermal.invert", False, "invert (black-hot cameras)", dynamic=True),
    Param("thermal.normalize_8bit", False, "also stretch mono8 thermal (usually already AGC'd by the camera)",
          dynamic=True),
    Param("thermal.transport", "raw", "raw: thermal/image_raw (Image); compressed: thermal/image_raw/compressed "
          "(image_transport's PNG/JPEG)", TRANSPORTS),
    Param("rgb.transport", "raw", "raw: rgb/image_raw (Image); compressed: rgb/image_raw/compressed (JPEG/PNG)",
          TRANSPORTS),
    Param("qos.reliability", "best_effort", "subscriber reliability; best_effort accepts every publisher",
          RELIABILITIES),
    Param("qos.depth", 5, "subscriber queue depth", low=1, high=1000),
    Param("publish.color", True, "publish segmentation/color (computed only while subscribed)", dynamic=True),
    Param("publish.overlay", False, "publish fused/overlay: the coloured mask blended over the fused image",
          dynamic=True),
    Param("publish.overlay_alpha", 0.5, "weight of the mask in fused/overlay", low=0.0, high=1.0, dynamic=True),
    Param("publish.camera_info", True, "republish the RGB camera_info as fused/camera_info", dynamic=True),
    Param("publish.compressed", True, "also publish fused/image/compressed (JPEG) and segmentation/color/compressed "
          "(PNG), encoded only while subscribed", dynamic=True),
    Param("publish.jpeg_quality", 90, "JPEG quality of fused/image/compressed", low=1, high=100, dynamic=True),
    Param("rgb_frame_id", "", "frame_id for outputs when the RGB driver leaves it empty", dynamic=True),
    Param("diagnostics.period", 1.0, "seconds between /diagnostics messages", low=0.1, high=60.0, dynamic=True),
    Param("diagnostics.stale_timeout", 1.0, "seconds without messages (or without a fused pair while both cameras "
          "deliver) before it is reported", low=0.1, high=3600.0, dynamic=True),
    Param("diagnostics.expected_rate", 0.0, "warn when the output rate falls below 80 % of this (Hz); 0 = off",
          low=0.0, high=1000.0, dynamic=True),
)
BY_NAME: dict[str, Param] = {p.name: p for p in PARAMS}
DEFAULTS: dict[str, Any] = {p.name: p.default for p in PARAMS}


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return f"a list of {len(value)}"
    return f"a {type(value).__name__}"


def check_value(name: str, value: Any) -> Any:
    """``value`` converted to the parameter's type (an integer where a number is expected is fine), or a
    one-line :class:`ConfigError` saying what is valid."""
    param = BY_NAME.get(name)
    if param is None:
        raise ConfigError(unknown_parameter_message(name))
    kind, where = param.kind, f"parameter {name}"
    if kind == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r} ({_type_name(value)})")
        return value
    if kind == "str":
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, got {value!r} ({_type_name(value)})")
        if param.choices and value not in param.choices:
            raise ConfigError(f"{where}={value!r} must be {param.constraints}")
        return value
    if kind == "float_list":
        if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
            value = value.tolist()  # rclpy hands live double arrays over as array.array('d') (numpy: ndarray)
        if not isinstance(value, (list, tuple)) or len(value) != len(param.default) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value):
            raise ConfigError(f"{where} must be a list of {len(param.default)} finite numbers, got {value!r}")
        return [float(v) for v in value]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{where} must be {'an integer' if kind == 'int' else 'a number'}, got {value!r} "
                          f"({_type_name(value)})")
    if not math.isfinite(value):
        raise ConfigError(f"{where} must be finite, got {value!r}")
    if kind == "int":
        if value != int(value):
            raise ConfigError(f"{where} must be an integer, got {value!r}")
        value = int(value)
    else:
        value = float(value)
    if (param.low is not None and value < param.low) or (param.high is not None and value > param.high) or (
            param.step and (value - (param.low or 0)) % param.step):
        raise ConfigError(f"{where}={value!r} is out of range: must be {param.constraints}")
    return value


def unknown_parameter_message(name: str) -> str:
    close = difflib.get_close_matches(name, list(BY_NAME), n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]}?" if close else "; see config/psfusion.yaml for the parameters"
    return f"unknown parameter {name!r}{hint}"


def is_ros_own(name: str) -> bool:
    return any(name == p or (p.endswith(".") and name.startswith(p)) for p in ROS_OWN_PARAMETERS)


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{'sync': {'queue_size': 10}}`` → ``{'sync.queue_size': 10}`` (how ROS 2 names nested parameters)."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def check_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """Every value checked and converted; unknown names are an error (a typo must not pass silently)."""
    out = {}
    for name, value in flatten(values).items():
        if is_ros_own(name):
            continue
        out[name] = check_value(name, value)
    return out


def installed_config(name: str) -> Path | None:
    """``config/<name>`` of this installation: ament share directory, pip data directory or source tree."""
    import sys

    candidates = []
    try:
        from ament_index_python.packages import get_package_share_directory

        candidates.append(Path(get_package_share_directory("psfusion_ros")) / "config" / name)
    except Exception:  # noqa: BLE001 - not in an ament index (plain virtual environment)
        pass
    candidates += [Path(sys.prefix) / "share" / "psfusion_ros" / "config" / name,
                   Path(__file__).resolve().parents[2] / "config" / name]
    return next((path for path in candidates if path.is_file()), None)


def default_params_file() -> Path:
    """``config/psfusion.yaml`` of this installation."""
    path = installed_config("psfusion.yaml")
    if path is None:
        raise ConfigError("config/psfusion.yaml not found in this installation; pass --params-file")
    return path


def node_keys(node_name: str = NODE_NAME) -> tuple[str, ...]:
    """Keys of a parameter file that apply to a node of this name in any namespace, most specific first."""
    return (f"/**/{node_name}", node_name, f"/{node_name}", "/**")


def load_params_file(path: str | Path, node_name: str = NODE_NAME) -> dict[str, Any]:
    """The checked, flattened ``ros__parameters`` that ROS would give node ``node_name`` from this file
    (``/**`` wildcards first, then the node's own section, later keys overriding earlier ones)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such parameter file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read parameter file ({type(exc).__name__})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}: not valid YAML{where}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a parameter file maps node names to ros__parameters")
    values: dict[str, Any] = {}
    found = False
    for key in reversed(node_keys(node_name)):  # least specific first, so the node's own section wins
        section = data.get(key)
        if isinstance(section, dict) and isinstance(section.get("ros__parameters"), dict):
            values.update(flatten(section["ros__parameters"]))
            found = True
    if not found:
        raise ConfigError(f"{path}: no ros__parameters for node {node_name!r} (expected a '/**/{node_name}:' "
                          "section)")
    try:
        return check_values(values)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


# -- the two documents generated from the table (``make params`` rewrites them; a test keeps them equal) ----------
def _yaml_value(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=1000).strip().removesuffix("...").strip()


def render_params_yaml() -> str:
    """``config/psfusion.yaml``: every parameter with its default, meaning and valid values."""
    lines = [
        "# psfusion_node parameters: ros2 launch psfusion_ros psfusion.launch.py, or",
        "#   ros2 run psfusion_ros psfusion_node --ros-args --params-file config/psfusion.yaml",
        "# '/**/psfusion' applies to a node named psfusion in any namespace (one node per camera pair).",
        "# Generated from psfusion_ros/pipeline/parameters.py (make params); 'live' marks values that",
        "# `ros2 param set` changes while the node runs, the others are read at start-up.",
        f"/**/{NODE_NAME}:",
        "  ros__parameters:",
    ]
    section = None
    for p in PARAMS:
        prefix, _, leaf = p.name.rpartition(".")
        if prefix != section:
            section = prefix
            if prefix:
                lines.append(f"    {prefix}:")
        indent = "      " if prefix else "    "
        notes = "; ".join(x for x in (p.constraints, "live" if p.dynamic else "") if x)
        lines.append(f"{indent}{leaf}: {_yaml_value(p.default)}  # {p.description}" + (f" ({notes})" if notes else ""))
    return "\n".join(lines) + "\n"


def render_params_table() -> str:
    """The README's parameter table (markdown)."""
    rows = ["| parameter | default | live | valid values | meaning |", "| --- | --- | --- | --- | --- |"]
    for p in PARAMS:
        default = "identity" if p.default == list(IDENTITY_3X3) else _yaml_value(p.default)
        rows.append(f"| `{p.name}` | `{default}` | {'yes' if p.dynamic else ''} | "
                    f"{p.constraints.replace('|', chr(92) + '|')} | {p.description} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":  # python -m psfusion_ros.pipeline.parameters yaml|table
    import sys

    print(render_params_yaml() if sys.argv[1:] == ["yaml"] else render_params_table(), end="")
