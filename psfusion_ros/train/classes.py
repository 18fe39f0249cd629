"""Class sets other than MSRS: names and colours from a small YAML file (``--palette``).

    classes:
      - {name: background, color: [0, 0, 0]}
      - {name: vehicle, color: [64, 0, 128]}
      - {name: pedestrian, color: [64, 64, 0]}

Ids are the list positions. The set is stored in the checkpoint (``classes``, ``palette``) for whoever reads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from psfusion_ros.constants import MSRS_CLASSES, MSRS_PALETTE
from psfusion_ros.errors import ConfigError


@dataclass(frozen=True)
class ClassSet:
    names: tuple[str, ...]
    colors: tuple[tuple[int, int, int], ...]

    def __len__(self) -> int:
        return len(self.names)

    def colorize(self, ids: np.ndarray) -> np.ndarray:
        """(H, W) class ids → (H, W, 3) uint8 RGB; ids outside the set are white."""
        lut = np.full((256, 3), 255, np.uint8)
        lut[: len(self.colors)] = self.colors
        return lut[np.clip(ids, 0, 255).astype(np.uint8)]


MSRS = ClassSet(MSRS_CLASSES, MSRS_PALETTE)


def generic_class_set(count: int) -> ClassSet:
    """``count`` classes without a palette file: MSRS colours first, then distinct generated ones."""
    rng = np.random.default_rng(count)
    colors = list(MSRS_PALETTE[:count])
    colors += [tuple(int(c) for c in rng.integers(32, 256, 3)) for _ in range(count - len(colors))]
    names = MSRS_CLASSES if count == len(MSRS_CLASSES) else tuple(f"class_{i}" for i in range(count))
    return ClassSet(tuple(names), tuple(colors))


def load_class_set(path: str | Path) -> ClassSet:
    """The class set of a palette file; every mistake is one ConfigError naming the file and the entry."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read palette file ({type(exc).__name__})") from None
    entries = data.get("classes") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{path}: expected 'classes:' with a list of {{name, color: [r, g, b]}} entries")
    if len(entries) > 255:
        raise ConfigError(f"{path}: {len(entries)} classes; at most 255 (id 255 is the ignore label)")
    names, colors = [], []
    for i, entry in enumerate(entries):
        color = entry.get("color") if isinstance(entry, dict) else None
        if (not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not isinstance(color, list)
                or len(color) != 3 or not all(isinstance(c, int) and 0 <= c <= 255 for c in color)):
            raise ConfigError(f"{path}: class {i}: expected {{name: text, color: [r, g, b]}} with 0..255 values, "
                              f"got {entry!r}")
        names.append(entry["name"])
        colors.append(tuple(color))
    return ClassSet(tuple(names), tuple(colors))
