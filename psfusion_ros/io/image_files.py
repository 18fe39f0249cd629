"""Image files in and out, the way the reference test script reads and writes them (PIL)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from psfusion_ros.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
#: Folder names that hold class-id label images beside ``ir/`` and ``vi/`` (MSRS, MFNet and common variants).
LABEL_DIRS = ("label", "Label", "Segmentation_labels", "labels")


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


def read_thermal_image(path: Path) -> np.ndarray:
    """A thermal frame as recorded: 8-bit, 16-bit counts or float temperatures stay what they are (PIL's 'L'
    conversion would clip 16-bit counts at 255); colour images become luma."""
    try:
        with Image.open(path) as img:
            if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
                pixels = np.array(img)
                return pixels.astype(np.uint16) if img.mode.startswith("I;16") else pixels.astype(np.float32)
            return np.array(img.convert("L"))
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"{path}: cannot read image ({exc.__class__.__name__})") from None


def find_label_dir(folder: Path) -> Path | None:
    """The label folder inside ``folder`` (a dataset split), if there is one."""
    return next((folder / d for d in LABEL_DIRS if (folder / d).is_dir()), None)


def label_path(label_dir: Path, name: str) -> Path | None:
    """The label image for the pair called ``name`` (same name, or same stem as a PNG)."""
    return next((p for p in (label_dir / name, label_dir / (Path(name).stem + ".png")) if p.is_file()), None)


def read_label(path: Path) -> np.ndarray:
    """A class-id image as (H, W) uint8: grey values or palette indices are the ids (converting a palette image
    to grey would turn ids into luminances); colour images are refused, they are visualizations, not labels."""
    try:
        with Image.open(path) as img:
            mode = img.mode
            ids = None if mode in ("RGB", "RGBA") else np.array(img if mode in ("L", "P") else img.convert("I"))
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"{path}: cannot read label ({exc.__class__.__name__})") from None
    if ids is None:
        raise DataError(f"{path}: a colour image ({mode}); labels are single-channel class-id images")
    if ids.dtype != np.uint8:
        if ids.min() < 0 or ids.max() > 255:
            raise DataError(f"{path}: class ids {ids.min()}..{ids.max()} do not fit 0..255")
        ids = ids.astype(np.uint8)
    return ids


def write_image(path: Path, image: np.ndarray) -> None:
    """Save with PIL's defaults for the file's extension, via a temporary file (never half-written)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = Image.registered_extensions().get(path.suffix.lower(), "PNG")
    tmp = path.with_name(f".{path.name}.partial")
    Image.fromarray(image).save(tmp, format=fmt)
    os.replace(tmp, path)
