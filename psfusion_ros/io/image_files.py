"""Image files in and out, the way the reference test script reads and writes them (PIL)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from psfusion_ros.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def natural_key(name: str) -> list[object]:
    """Sort key that orders ``img2`` before ``img10`` (the reference uses natsort)."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def matched_names(ir_dir: Path, vi_dir: Path) -> tuple[list[str], list[str]]:
    """File names present in both folders (naturally sorted), and those present in only one."""
    def images(d: Path) -> set[str]:
        return {p.name for p in d.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES}

    ir, vi = images(ir_dir), images(vi_dir)
    return sorted(ir & vi, key=natural_key), sorted(ir ^ vi, key=natural_key)


def read_image(path: Path, mode: str) -> np.ndarray:
    """Read as ``RGB`` (visible) or ``L`` (infrared), like the reference; a clear error if unreadable."""
    try:
        with Image.open(path) as img:
            return np.array(img.convert(mode))
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"{path}: cannot read image ({exc.__class__.__name__})") from None


def write_image(path: Path, image: np.ndarray) -> None:
    """Save with PIL's defaults for the file's extension, via a temporary file (never half-written)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = Image.registered_extensions().get(path.suffix.lower(), "PNG")
    tmp = path.with_name(f".{path.name}.partial")
    Image.fromarray(image).save(tmp, format=fmt)
    os.replace(tmp, path)
