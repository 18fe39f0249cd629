"""Exported artifacts and their sidecar: what an artifact was built for, checked before it is loaded.

An AOTInductor package or a TensorRT program is tied to the machine and software that built it (torch version,
CPU instruction set or GPU compute capability, TensorRT version and the Torch-TensorRT ABI) and to the network
size, precision and weights it was exported with. ``psfusion-export`` writes ``ARTIFACT.json`` beside it; the node
compares it with its own parameters and this machine and refuses a mismatch with one line that names it.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import platform
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

from psfusion_ros.errors import EngineError
from psfusion_ros.model.precision import POLICIES

FORMAT = "psfusion_ros engine"
FORMAT_VERSION = 1
REEXPORT = "re-run psfusion-export on this machine"


def sidecar_path(path: str | Path) -> Path:
    return Path(str(path) + ".json")


@lru_cache(maxsize=8)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checkpoint_sha256(path: str | Path | None) -> str | None:
    """sha256 of the weights file (None: untrained weights); cached while the file is unchanged."""
    if not path:
        return None
    stat = Path(path).stat()
    return _sha256(str(path), stat.st_size, stat.st_mtime_ns)


def _version(module: str) -> str | None:
    try:
        from importlib.metadata import version

        return version(module)
    except Exception:  # noqa: BLE001 - not installed
        return None


def environment(device: torch.device) -> dict[str, Any]:
    """What an artifact built on this machine depends on."""
    env: dict[str, Any] = {
        "torch": torch.__version__, "device": device.type, "machine": platform.machine(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_tensorrt": _version("torch-tensorrt") or _version("torch_tensorrt"),
        "tensorrt": _version("tensorrt") or _version("tensorrt-cu12") or _version("tensorrt-cu13"),
    }
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        env["gpu"] = torch.cuda.get_device_name(index)
        env["compute_capability"] = list(torch.cuda.get_device_capability(index))
        env["cuda"] = torch.version.cuda
    return env


def write_sidecar(path: str | Path, meta: dict[str, Any]) -> Path:
    doc = {"format": FORMAT, "format_version": FORMAT_VERSION,
           "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), **meta}
    target = sidecar_path(path)
    tmp = target.with_name(target.name + ".partial")
    tmp.write_text(json.dumps(doc, indent=1) + "\n")
    tmp.replace(target)
    return target


def read_sidecar(path: str | Path) -> dict[str, Any]:
    artifact, side = Path(path), sidecar_path(path)
    if not artifact.is_file():
        raise EngineError(f"{artifact}: no such engine file (export one with psfusion-export)")
    try:
        meta = json.loads(side.read_text())
    except FileNotFoundError:
        raise EngineError(f"{artifact}: its sidecar {side.name} is missing, so what it was built for is unknown; "
                          f"{REEXPORT}") from None
    except (OSError, ValueError) as exc:
        raise EngineError(f"{side}: unreadable sidecar ({type(exc).__name__}); {REEXPORT}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise EngineError(f"{side}: not a psfusion_ros engine sidecar; {REEXPORT}")
    problem = _schema_problem(meta)
    if problem:
        raise EngineError(f"{side}: {problem}; {REEXPORT}")
    return meta


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _optional_str(value: Any) -> bool:
    return value is None or isinstance(value, str)


def _pair_of_ints(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and all(_is_int(v) and 0 <= v <= 100_000 for v in value)


#: sidecar key → (what it must be, check); keys the node reads, so a hand-edited or foreign file is one line
_SCHEMA: dict[str, tuple[str, Any]] = {
    "backend": ("a string", lambda v: isinstance(v, str)),
    "precision": ("a string", lambda v: isinstance(v, str)),
    "network_size": ("[height, width] (two integers)", lambda v: _pair_of_ints(v) and min(v) > 0),
    "num_classes": ("a positive integer", lambda v: _is_int(v) and 0 < v <= 1000),
    "checkpoint_sha256": ("a sha256 hex string or null", lambda v: v is None or (
        isinstance(v, str) and len(v) == 64 and all(c in "0123456789abcdef" for c in v))),
    "environment": ("a mapping", lambda v: isinstance(v, dict)),
    "hardware_compatible": ("true or false", lambda v: isinstance(v, bool)),
    "version_compatible": ("true or false", lambda v: isinstance(v, bool)),
}
_ENVIRONMENT: dict[str, tuple[str, Any]] = {
    **{key: ("a string or null", _optional_str)
       for key in ("torch", "device", "machine", "cpu_capability", "torch_tensorrt", "tensorrt", "gpu", "cuda")},
    "compute_capability": ("[major, minor] or null", lambda v: v is None or _pair_of_ints(v)),
}


def _schema_problem(meta: dict[str, Any]) -> str | None:
    """What is wrong with the fields the node relies on (None: nothing)."""
    for key in ("backend", "precision", "network_size", "environment"):
        if key not in meta:
            return f"has no {key!r}"
    for table, doc, prefix in ((_SCHEMA, meta, ""), (_ENVIRONMENT, meta["environment"], "environment.")):
        for key, (what, valid) in table.items():
            if key in doc and not valid(doc[key]):
                text = repr(doc[key])
                return f"{prefix}{key} must be {what}, got {text if len(text) <= 40 else text[:37] + '...'}"
    return None


def check_artifact(path: str | Path, backend: str, precision: str, network_size: tuple[int, int] | None,
                   checkpoint: str | None, device: torch.device) -> dict[str, Any]:
    """The sidecar, if the artifact fits this configuration and machine; else one line naming the mismatch."""
    meta = read_sidecar(path)
    here = environment(device)
    problems = []

    def differs(what: str, built: Any, wanted: Any) -> None:
        if built != wanted:
            problems.append(f"{what} {built}, this node needs {wanted}")

    differs("backend", meta.get("backend"), backend)
    differs("precision", meta.get("precision"), precision)
    policy = meta.get("precision_policy")  # absent in artifacts exported before policies were recorded
    if isinstance(policy, dict) and meta.get("precision") == precision and backend != "onnx":
        differs(f"{precision} policy with fp32 blocks", policy.get("fp32_blocks"),
                list(POLICIES[precision].fp32_blocks) if precision in POLICIES else None)
    if backend == "compile":  # packages exported before the key took a permuted (NHWC-memory) visible input
        differs("input layout", meta.get("input_layout", "permuted"), "contiguous")
    differs("network size", _size(meta.get("network_size")), _size(network_size))
    differs("device", meta["environment"].get("device"), device.type)
    built_sha = meta.get("checkpoint_sha256")
    wanted_sha = checkpoint_sha256(checkpoint)
    if built_sha != wanted_sha:
        problems.append("other weights (" + (f"sha256 {built_sha[:12]}" if built_sha else "untrained") + " vs "
                        + (f"{Path(checkpoint).name} sha256 {wanted_sha[:12]}" if wanted_sha else "untrained") + ")")
    built_env = meta["environment"]
    if backend == "compile":
        differs("torch", built_env.get("torch"), here["torch"])
        if device.type == "cpu":
            differs("CPU instruction set", built_env.get("cpu_capability"), here["cpu_capability"])
    if device.type == "cuda":
        if backend == "tensorrt":
            differs("Torch-TensorRT", built_env.get("torch_tensorrt"), here["torch_tensorrt"])
            if not meta.get("version_compatible"):
                differs("TensorRT", built_env.get("tensorrt"), here["tensorrt"])
        built_cc, cc = built_env.get("compute_capability"), here.get("compute_capability")
        portable = meta.get("hardware_compatible") and built_cc and cc and built_cc[0] >= 8 and cc[0] >= 8
        if not portable:
            differs("GPU compute capability", built_cc, cc)
    if problems:
        raise EngineError(f"{path}: exported for {problems[0]}" + (f" (+{len(problems) - 1} more)"
                                                                    if len(problems) > 1 else "") + f"; {REEXPORT}")
    return meta


def _size(size: Any) -> str | None:
    return None if size is None else f"{size[0]}x{size[1]}"
