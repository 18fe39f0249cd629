"""Reading and writing PSFusion checkpoints: the official ``best_model.pth``, bare state dicts, our own.

Every failure is a :class:`CheckpointError` whose message is one line naming the file and the problem,
so CLIs and the node can print it instead of a traceback.
"""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from psfusion_ros.constants import NUM_CLASSES, OFFICIAL_CHECKPOINT_KEY, PROJECT_CHECKPOINT_FORMAT
from psfusion_ros.errors import CheckpointError, one_line
from psfusion_ros.model.psfusion import PSFusion

#: Wrapper keys under which training scripts commonly nest a state dict.
_NESTED_KEYS = (OFFICIAL_CHECKPOINT_KEY, "model", "state_dict")
_CLASSIFIER_WEIGHT = "classfier.semantic_conv2.weight"


def _safe_globals() -> list[Any]:
    """Non-tensor objects an official checkpoint may legitimately hold (numpy scalars in ``best_mIou``)."""
    import numpy as np

    found: list[Any] = [np.dtype]
    for module_name in ("numpy._core.multiarray", "numpy.core.multiarray"):
        try:
            module = __import__(module_name, fromlist=["scalar"])
            found.append(module.scalar)
            break
        except (ImportError, AttributeError):
            continue
    found += [type(np.dtype(t)) for t in ("float64", "float32", "int64")]
    return found


def describe_file(head: bytes) -> str | None:
    """What a file that is not a PyTorch checkpoint looks like, from its first bytes (None: looks like one)."""
    if not head:
        return "an empty file"
    if head.startswith((b"PK\x03\x04", b"\x80")):  # torch's zip format, or a legacy pickle
        return None
    text = head.lstrip().lower()
    if text.startswith(b"version https://git-lfs"):
        return "a Git LFS pointer, not the weights (run `git lfs pull` where you cloned it)"
    if text.startswith((b"<!doctype html", b"<html", b"<?xml", b"<head")):
        return "an HTML page, not the weights (the download saved a web page: fetch the file itself)"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return "a text file, not a PyTorch checkpoint"


def read_checkpoint(path: Path) -> Any:
    """The loaded object of a checkpoint file (tensors and plain values only), or a one-line CheckpointError."""
    if not path.exists():
        raise CheckpointError(f"{path}: no such file")
    if path.is_dir():
        raise CheckpointError(f"{path}: is a directory, expected a .pth checkpoint file")
    try:
        with path.open("rb") as f:
            looks_like = describe_file(f.read(512))
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read ({exc.strerror or type(exc).__name__})") from None
    if looks_like:
        raise CheckpointError(f"{path}: {looks_like}")
    try:
        with torch.serialization.safe_globals(_safe_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        detail = one_line(exc)
        if "weights_only" in detail or "Weights only" in detail:  # torch's advice does not apply to a user file
            detail = "it holds Python objects other than tensors and numbers"
        raise CheckpointError(f"{path}: not a loadable PyTorch checkpoint ({detail})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, KeyError, IndexError,
            AttributeError, TypeError, MemoryError) as exc:
        raise CheckpointError(f"{path}: corrupt or truncated checkpoint ({type(exc).__name__}: "
                              f"{one_line(exc)[:120]})") from None


def extract_state_dict(obj: Any, path: Path | str = "<checkpoint>") -> dict[str, torch.Tensor]:
    """The network weights inside a loaded checkpoint object, whatever wrapper it came in."""
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}: expected a dict of weights, found {type(obj).__name__}")
    for key in _NESTED_KEYS:
        if isinstance(obj.get(key), Mapping):
            obj = obj[key]
            break
    state = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not state:
        raise CheckpointError(f"{path}: holds no tensors (keys: {', '.join(map(str, list(obj)[:5]))})")
    if all(k.startswith("module.") for k in state):  # saved from nn.DataParallel
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def _check_compatible(state: Mapping[str, torch.Tensor], model: PSFusion, path: Path | str) -> None:
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        example = (missing or unexpected)[0]
        kind = "not a PSFusion checkpoint" if len(missing) > len(expected) // 2 else "incompatible weights"
        raise CheckpointError(
            f"{path}: {kind}: {len(missing)} missing keys, {len(unexpected)} unexpected keys "
            f"(e.g. {example!r})"
        )
    wrong = [k for k, v in expected.items() if tuple(state[k].shape) != tuple(v.shape)]
    if wrong:
        k = wrong[0]
        raise CheckpointError(
            f"{path}: {len(wrong)} tensors have the wrong shape, e.g. {k} is "
            f"{tuple(state[k].shape)} but the model expects {tuple(expected[k].shape)}"
        )
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(f"{path}: {len(bad)} tensors contain NaN or Inf, e.g. {bad[0]}")


def infer_num_classes(state: Mapping[str, torch.Tensor]) -> int:
    """Number of semantic classes a state dict was trained for (default 9 when it cannot tell)."""
    weight = state.get(_CLASSIFIER_WEIGHT)
    return int(weight.shape[0]) if weight is not None else NUM_CLASSES


def load_checkpoint(
    path: str | Path,
    num_classes: int | None = NUM_CLASSES,
    device: str | torch.device = "cpu",
) -> PSFusion:
    """A ready PSFusion in eval mode from an official, bare or psfusion_ros checkpoint (strict).

    ``num_classes=None`` takes the class count from the file.
    """
    path = Path(path)
    state = extract_state_dict(read_checkpoint(path), path)
    model = PSFusion(infer_num_classes(state) if num_classes is None else num_classes)
    _check_compatible(state, model, path)
    model.load_state_dict(state, strict=True)
    model.checkpoint_path = str(path)  # provenance: exported engines record which weights they were built from
    return model.to(device).eval()


def save_checkpoint(
    model: PSFusion, path: str | Path, metadata: Mapping[str, Any] | None = None
) -> None:
    """Write the project's format; the weights sit under ``MTAN`` so the official code can read it too."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        OFFICIAL_CHECKPOINT_KEY: {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "format": PROJECT_CHECKPOINT_FORMAT,
        "num_classes": model.num_classes,
        "metadata": dict(metadata or {}),
    }
    tmp = path.with_name(path.name + ".partial")
    torch.save(payload, tmp)
    tmp.replace(path)  # never leave a half-written checkpoint under the real name
