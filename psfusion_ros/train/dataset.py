"""Training data: the MSRS layout with labels, or plain ``vi/`` + ``ir/`` pairs for fusion-only training.

    DATAROOT/train/{vi,ir,label|Label|Segmentation_labels}/NAME.png   (+ optional bi/, bd/, mask/)
    DATAROOT/test/{vi,ir,label}/NAME.png                              (evaluation, see train/cli.py)

The reference reads three extra targets from pre-processed folders; when a folder is absent its target is derived
from the label image (:func:`derive_targets`), so any labelled set trains without pre-processing:

* ``bi`` (binary head): 1 on foreground classes (every id except 0 "unlabelled" and the ignore label 255).
* ``bd`` (boundary head): 1 where the class id changes between 4-neighbours, dilated by ``BOUNDARY_DILATION``.
* ``mask`` (fusion intensity term): the foreground, as ``bi``. With the reference's argument order the masked
  pixels follow the visible luminance (see :func:`psfusion_ros.train.losses.fusion_loss`).

Augmentation follows the reference: resize so the shorter side is ``crop`` when a side is not larger than the
crop (labels nearest), a random flip (vertical, horizontal or none), a random rotation (90, 180, 270 or none), a
random ``crop`` x ``crop`` patch. Each sample draws from its own generator seeded by (seed, epoch, index), so a run
is repeatable whatever the number of loader workers or processes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from psfusion_ros.constants import BOUNDARY_DILATION, IGNORE_LABEL
from psfusion_ros.errors import DataError, PSFusionError
from psfusion_ros.io.image_files import find_label_dir, label_path, matched_names, read_image, read_label

TARGET_DIRS = ("bi", "bd", "mask")


@dataclass(frozen=True)
class SamplePaths:
    name: str
    vi: Path
    ir: Path
    label: Path | None = None
    bi: Path | None = None
    bd: Path | None = None
    mask: Path | None = None


def split_dir(root: Path, split: str) -> Path:
    """``root/split`` in the MSRS layout, or ``root`` itself when it holds ``vi/`` and ``ir/`` directly."""
    for folder in (root / split, root):
        if (folder / "vi").is_dir() and (folder / "ir").is_dir():
            return folder
    raise DataError(f"{root}: no {split}/vi and {split}/ir folders (nor vi/ and ir/)")


def derive_targets(label: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``bi``, ``bd`` (uint8 0/1) and ``mask`` (float32 0/1) from a class-id image (module docstring)."""
    binary = ((label != 0) & (label != IGNORE_LABEL)).astype(np.uint8)
    edges = np.zeros(label.shape, bool)
    horizontal = label[:, 1:] != label[:, :-1]
    vertical = label[1:, :] != label[:-1, :]
    edges[:, 1:] |= horizontal
    edges[:, :-1] |= horizontal
    edges[1:, :] |= vertical
    edges[:-1, :] |= vertical
    boundary = edges.astype(np.uint8)
    if BOUNDARY_DILATION:
        boundary = cv2.dilate(boundary, np.ones((3, 3), np.uint8), iterations=BOUNDARY_DILATION)
    return binary, boundary, binary.astype(np.float32)


def _image_size(path: Path) -> tuple[int, int]:
    """(H, W) from the file header, checking the file is complete (PIL's verify reads every chunk)."""
    try:
        with Image.open(path) as img:
            size = img.size
            img.verify()
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise DataError(f"{path}: unreadable image ({type(exc).__name__})") from None
    return size[1], size[0]


class PairDataset(torch.utils.data.Dataset):
    """Visible/infrared pairs (and labels for ``task="full"``) from one split, checked when built.

    Samples that cannot be used (missing partner, unreadable file, sizes that differ) are listed in
    ``problems`` with their paths and left out; a file that turns out corrupt only when decoded mid-epoch is
    replaced by the next good sample and reported in the batch's ``problem`` field, so an epoch never dies.
    """

    def __init__(self, folder: Path, task: str = "full", crop: int | None = 256, seed: int = 0,
                 num_classes: int | None = None, augment: bool = True) -> None:
        self.folder, self.task, self.crop, self.seed, self.augment = Path(folder), task, crop, seed, augment
        self.num_classes = num_classes
        self.epoch = 0
        self.problems: list[str] = []
        vi_dir, ir_dir = self.folder / "vi", self.folder / "ir"
        names, unmatched = matched_names(ir_dir, vi_dir)
        self.problems += [f"{self.folder}: {name} is in only one of ir/ and vi/" for name in unmatched]
        label_dir = find_label_dir(self.folder)
        if task == "full" and label_dir is None:
            raise DataError(f"{self.folder}: no label folder (label/, Label/, Segmentation_labels/); for pairs "
                            "without labels use --task fusion")
        extra = {t: self.folder / t for t in TARGET_DIRS if (self.folder / t).is_dir()}
        self.derived = [t for t in TARGET_DIRS if t not in extra]
        self.samples: list[SamplePaths] = []
        for name in names:
            sample = SamplePaths(name, vi_dir / name, ir_dir / name)
            if task == "full":
                paths = {"label": label_path(label_dir, name)}
                paths.update({t: label_path(d, name) for t, d in extra.items()})
                missing = [k for k, v in paths.items() if v is None]
                if missing:
                    self.problems.append(f"{sample.vi}: no {' / '.join(missing)} image for it")
                    continue
                sample = SamplePaths(name, sample.vi, sample.ir, **paths)
            problem = self._check(sample, num_classes)
            if problem:
                self.problems.append(problem)
            else:
                self.samples.append(sample)
        if not self.samples:
            detail = f" ({self.problems[0]}{' ...' if len(self.problems) > 1 else ''})" if self.problems else ""
            raise DataError(f"{self.folder}: no usable training pairs{detail}")

    @staticmethod
    def _check(sample: SamplePaths, num_classes: int | None) -> str | None:
        """Why a sample cannot be used (files complete, sizes equal, labels single-channel ids in range)."""
        try:
            files = [p for p in (sample.vi, sample.ir, sample.label, sample.bi, sample.bd, sample.mask) if p]
            sizes = {p: _image_size(p) for p in files}
            label = read_label(sample.label) if sample.label else None
        except DataError as exc:
            return str(exc)
        if len(set(sizes.values())) > 1:
            return f"{sample.vi}: sizes differ: " + ", ".join(f"{p.parent.name}/ {h}x{w}" for p, (h, w) in
                                                              sizes.items())
        if label is not None and num_classes is not None:
            bad = label[(label >= num_classes) & (label != IGNORE_LABEL)]
            if bad.size:
                return f"{sample.label}: class id {int(bad.max())} >= --num-classes {num_classes}"
        return None

    def __len__(self) -> int:
        return len(self.samples)

    def set_epoch(self, epoch: int) -> None:
        """Augmentations depend on the epoch: call before each epoch (workers get a fresh copy each epoch)."""
        self.epoch = epoch

    def load(self, index: int) -> dict[str, np.ndarray]:
        """One sample's arrays at full size: ``vi`` (H,W,3) uint8, ``ir`` (H,W) uint8 and, for the full task,
        ``label``, ``bi``, ``bd`` (H,W) uint8 and ``mask`` (H,W) float32."""
        s = self.samples[index]
        arrays: dict[str, np.ndarray] = {"vi": read_image(s.vi, "RGB"), "ir": read_image(s.ir, "L")}
        if self.task != "full":
            return arrays
        label = read_label(s.label)
        bi, bd, mask = derive_targets(label)
        if s.bi:
            bi = (read_image(s.bi, "L") > 127).astype(np.uint8)
        if s.bd:
            bd = (read_image(s.bd, "L") > 127).astype(np.uint8)
        if s.mask:
            mask = read_image(s.mask, "L").astype(np.float32) / 255.0
        arrays.update(label=label, bi=bi, bd=bd, mask=mask)
        return arrays

    def transform(self, arrays: dict[str, np.ndarray], rng: np.random.Generator) -> dict[str, np.ndarray]:
        crop = self.crop
        h, w = arrays["ir"].shape
        if crop and min(h, w) <= crop:  # the reference resizes the shorter side to the crop size
            scale = crop / min(h, w)
            size = (max(crop, round(w * scale)), max(crop, round(h * scale)))
            arrays = {k: cv2.resize(v, size, interpolation=cv2.INTER_NEAREST if k in ("label", "bi", "bd")
                                    else cv2.INTER_LINEAR) for k, v in arrays.items()}
        if self.augment:
            flip = int(rng.integers(3))  # 0 vertical, 1 horizontal, 2 none
            turns = (1, 2, 3, 0)[int(rng.integers(4))]  # 90, 180, 270 degrees or none
            if flip < 2:
                arrays = {k: np.flip(v, axis=flip) for k, v in arrays.items()}
            if turns:
                arrays = {k: np.rot90(v, turns, axes=(0, 1)) for k, v in arrays.items()}
        if crop:
            h, w = arrays["ir"].shape
            top, left = int(rng.integers(h - crop + 1)), int(rng.integers(w - crop + 1))
            arrays = {k: v[top:top + crop, left:left + crop] for k, v in arrays.items()}
        return {k: np.ascontiguousarray(v) for k, v in arrays.items()}

    def __getitem__(self, index: int) -> dict[str, Any]:
        problem = ""
        for attempt in range(len(self.samples)):
            i = (index + attempt) % len(self.samples)
            try:
                arrays = self.load(i)
                break
            except PSFusionError as exc:  # corrupt only when decoded: use the next sample, report this one
                problem = problem or str(exc)
        else:
            raise DataError(f"{self.folder}: no sample could be read")
        rng = np.random.default_rng([self.seed, self.epoch, index])
        arrays = self.transform(arrays, rng)
        item: dict[str, Any] = {
            "vi": torch.from_numpy(arrays["vi"]).permute(2, 0, 1).float().div_(255.0),
            "ir": torch.from_numpy(arrays["ir"])[None].float().div_(255.0),
            "name": self.samples[i].name, "problem": problem,
        }
        if self.task == "full":
            item.update(label=torch.from_numpy(arrays["label"]).long(), bi=torch.from_numpy(arrays["bi"]).long(),
                        bd=torch.from_numpy(arrays["bd"]).long(), mask=torch.from_numpy(arrays["mask"])[None])
        return item
