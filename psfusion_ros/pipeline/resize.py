"""Network-size rules and the resampling used on the way in and out of the network.

Two resamplers: ``paper`` reproduces the reference test script (PIL bicubic on 8-bit images, both ways),
``fast`` uses OpenCV (area when shrinking, bilinear when growing) for the live node.
"""

from __future__ import annotations

import re

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from psfusion_ros.constants import SIZE_MULTIPLE
from psfusion_ros.errors import ConfigError, FrameError
from psfusion_ros.pipeline.parameters import MAX_NETWORK_SIDE, RESAMPLERS


def floor_to_multiple(height: int, width: int, multiple: int = SIZE_MULTIPLE) -> tuple[int, int]:
    """Largest (H, W) ≤ the input that the network accepts, as the reference's ``w - w % 32``."""
    if height < multiple or width < multiple:
        raise FrameError(f"image {height}x{width} is smaller than the network minimum {multiple}x{multiple}")
    return height - height % multiple, width - width % multiple


def parse_size(text: str, network: bool = True) -> tuple[int, int]:
    """``"480x640"`` → (480, 640). Network sizes must also be multiples of 32 (up to the largest side)."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX,]\s*(\d+)\s*", str(text))
    if not match or not int(match.group(1)) or not int(match.group(2)):
        raise ConfigError(f"size {text!r} is not HEIGHTxWIDTH in pixels, e.g. 480x640")
    size = int(match.group(1)), int(match.group(2))
    if network:
        check_network_size(size)
    return size


def check_network_size(size: tuple[int, int]) -> None:
    """Raise :class:`ConfigError` unless both sides are multiples of 32 within the supported range."""
    h, w = size
    if h <= 0 or w <= 0 or h % SIZE_MULTIPLE or w % SIZE_MULTIPLE or max(h, w) > MAX_NETWORK_SIDE:
        raise ConfigError(f"network size {h}x{w}: both sides must be multiples of {SIZE_MULTIPLE} "
                          f"from {SIZE_MULTIPLE} to {MAX_NETWORK_SIDE}")


def resize_image(image: np.ndarray | torch.Tensor, size: tuple[int, int], resample: str = "paper"
                 ) -> np.ndarray | torch.Tensor:
    """Resize an (H,W) or (H,W,3) image (uint8 or float32; a float tensor with ``fast``) to ``size`` = (H, W)."""
    h, w = size
    if tuple(image.shape[:2]) == (h, w):
        return image
    if isinstance(image, torch.Tensor):
        if resample != "fast" or not image.is_floating_point():
            raise ValueError("tensors are resized with resample='fast' and must be floating point")
        shrinking = h * w < image.shape[0] * image.shape[1]
        batch = image[None, None] if image.ndim == 2 else image.permute(2, 0, 1)[None]
        out = F.interpolate(batch, size=(h, w), mode="bilinear", align_corners=False, antialias=shrinking)
        return out[0, 0] if image.ndim == 2 else out[0].permute(1, 2, 0)
    if resample == "paper":
        return np.asarray(Image.fromarray(image).resize((w, h), Image.Resampling.BICUBIC))
    if resample == "fast":
        shrinking = h * w < image.shape[0] * image.shape[1]
        return cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    raise ConfigError(f"unknown resampler {resample!r}; expected one of {RESAMPLERS}")


def resize_labels(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize for class-id maps (never invents classes at boundaries)."""
    h, w = size
    if labels.shape[:2] == (h, w):
        return labels
    return cv2.resize(labels, (w, h), interpolation=cv2.INTER_NEAREST)
