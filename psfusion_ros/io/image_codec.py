"""sensor_msgs/Image ↔ numpy without cv_bridge, for rclpy and rosbags messages alike.

Decoding returns views of the message buffer whenever the layout allows (no copy), honours ``step``
padding and ``is_bigendian``, and raises :class:`ImageDecodeError` with a one-line reason for anything
malformed. :func:`decode_rgb` and :func:`decode_thermal` are the only entry points the node and the tools use (a
CompressedImage goes to :mod:`psfusion_ros.io.compressed` and comes back as the same frames):
whatever a message holds, they return pixels or raise that error, never anything else (a fuzz test holds
them to it). No rclpy and no torch here, so offline tools use the same code and it imports fast.
"""

from __future__ import annotations

import sys
from typing import Any

import cv2
import numpy as np

from psfusion_ros.errors import ImageDecodeError
from psfusion_ros.io.compressed import byte_buffer, compressed_rgb, compressed_thermal, is_compressed

# encoding → (dtype, channels)
_LAYOUTS: dict[str, tuple[str, int]] = {
    "mono8": ("u1", 1), "8UC1": ("u1", 1),
    "mono16": ("u2", 1), "16UC1": ("u2", 1),
    "32FC1": ("f4", 1),
    "rgb8": ("u1", 3), "bgr8": ("u1", 3), "8UC3": ("u1", 3),
    "rgba8": ("u1", 4), "bgra8": ("u1", 4), "8UC4": ("u1", 4),
    "yuv422": ("u1", 2), "uyvy": ("u1", 2), "yuv422_yuy2": ("u1", 2), "yuyv": ("u1", 2),
}
SUPPORTED_ENCODINGS = tuple(_LAYOUTS)
THERMAL_ENCODINGS = ("mono8", "8UC1", "mono16", "16UC1", "32FC1")
_UYVY = ("yuv422", "uyvy")
_YUYV = ("yuv422_yuy2", "yuyv")
_NATIVE_BIG = sys.byteorder == "big"


def stamp_ns(stamp: Any) -> int:
    """builtin_interfaces/Time (rclpy or rosbags) → integer nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def decode_image(msg: Any) -> np.ndarray:
    """Pixels of an Image message: (H, W) for one channel, (H, W, C) otherwise, native byte order."""
    try:
        encoding = str(msg.encoding)
        height, width, step = int(msg.height), int(msg.width), int(msg.step)
    except (AttributeError, TypeError, ValueError) as exc:
        raise ImageDecodeError(f"not an Image message ({type(exc).__name__})") from None
    layout = _LAYOUTS.get(encoding)
    if layout is None:
        raise ImageDecodeError(
            f"unsupported encoding {encoding!r}; supported: {', '.join(SUPPORTED_ENCODINGS)}"
        )
    if height <= 0 or width <= 0:
        raise ImageDecodeError(f"empty image ({width}x{height}, {encoding})")
    dtype = np.dtype(layout[0])
    channels = layout[1]
    row_bytes = width * channels * dtype.itemsize
    if step < row_bytes:
        raise ImageDecodeError(f"step {step} is smaller than a {width}-pixel {encoding} row ({row_bytes} bytes)")
    buffer = byte_buffer(msg.data)
    needed = step * (height - 1) + row_bytes
    if buffer.size < needed:
        raise ImageDecodeError(
            f"truncated data: {buffer.size} bytes for a {width}x{height} {encoding} image with step {step} "
            f"(needs {needed})"
        )
    big = bool(getattr(msg, "is_bigendian", 0)) and dtype.itemsize > 1
    view_dtype = dtype.newbyteorder(">" if big else "<") if dtype.itemsize > 1 else dtype
    shape = (height, width) if channels == 1 else (height, width, channels)
    strides = (step, dtype.itemsize) if channels == 1 else (step, channels * dtype.itemsize, dtype.itemsize)
    pixels = np.ndarray(shape, view_dtype, buffer=buffer, strides=strides)
    if view_dtype.byteorder not in ("=", "|") and (view_dtype.byteorder == ">") != _NATIVE_BIG:
        pixels = pixels.astype(dtype.newbyteorder("="))
    return pixels


def decode_rgb(msg: Any) -> np.ndarray:
    """A visible camera message (Image or CompressedImage) as contiguous (H, W, 3) uint8 RGB, or
    :class:`ImageDecodeError`."""
    return _convert(msg, to_rgb, compressed_rgb)


def decode_thermal(msg: Any) -> np.ndarray:
    """A thermal camera message (Image or CompressedImage) as (H, W) uint8, uint16 or float32, or
    :class:`ImageDecodeError`."""
    return _convert(msg, to_thermal, compressed_thermal)


def _convert(msg: Any, convert: Any, compressed: Any) -> np.ndarray:
    try:
        if is_compressed(msg):
            return compressed(msg)
        return convert(decode_image(msg), str(msg.encoding))
    except ImageDecodeError:
        raise
    except (cv2.error, ValueError, TypeError, AttributeError, OverflowError, MemoryError) as exc:
        # OpenCV/numpy refusing a layout that passed the checks above: still one message, never a crash
        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise ImageDecodeError(f"cannot convert {getattr(msg, 'encoding', '?')!r} image: {first[:160]}") from None


def to_rgb(pixels: np.ndarray, encoding: str) -> np.ndarray:
    """A visible camera frame as contiguous (H, W, 3) uint8 RGB."""
    if encoding in ("rgb8", "8UC3"):
        rgb = pixels
    elif encoding == "bgr8":
        rgb = pixels[..., ::-1]
    elif encoding in ("rgba8", "8UC4"):
        rgb = pixels[..., :3]
    elif encoding == "bgra8":
        rgb = pixels[..., 2::-1]
    elif encoding in ("mono8", "8UC1"):
        return cv2.cvtColor(np.ascontiguousarray(pixels), cv2.COLOR_GRAY2RGB)
    elif encoding in _UYVY + _YUYV:
        if pixels.shape[1] % 2:
            raise ImageDecodeError(f"{encoding} packs two pixels per 4 bytes: width {pixels.shape[1]} must be even")
        code = cv2.COLOR_YUV2RGB_UYVY if encoding in _UYVY else cv2.COLOR_YUV2RGB_YUYV
        return cv2.cvtColor(np.ascontiguousarray(pixels), code)
    else:
        raise ImageDecodeError(f"encoding {encoding!r} cannot be used as a visible (RGB) image")
    return np.ascontiguousarray(rgb)


def to_thermal(pixels: np.ndarray, encoding: str) -> np.ndarray:
    """A thermal frame as (H, W) uint8, uint16 or float32 (colourised thermal is reduced to luma)."""
    if encoding in THERMAL_ENCODINGS:
        return pixels
    if pixels.ndim == 3 and pixels.dtype == np.uint8:
        return cv2.cvtColor(to_rgb(pixels, encoding), cv2.COLOR_RGB2GRAY)
    raise ImageDecodeError(f"encoding {encoding!r} cannot be used as a thermal image")


_ENCODE = {(np.dtype("u1"), 1): "mono8", (np.dtype("u1"), 3): "rgb8", (np.dtype("u2"), 1): "mono16",
           (np.dtype("f4"), 1): "32FC1"}


def image_fields(pixels: np.ndarray, encoding: str | None = None) -> dict[str, Any]:
    """The Image fields (height, width, encoding, is_bigendian, step, data) for an array."""
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    encoding = encoding or _ENCODE.get((pixels.dtype, channels))
    if encoding is None or _LAYOUTS.get(encoding, ("", 0))[1] != channels:
        raise ValueError(f"cannot encode a {pixels.dtype} array with {channels} channels as {encoding!r}")
    pixels = np.ascontiguousarray(pixels)
    return {
        "height": pixels.shape[0],
        "width": pixels.shape[1],
        "encoding": encoding,
        "is_bigendian": 0 if pixels.dtype.itemsize == 1 else int(_NATIVE_BIG),
        "step": pixels.strides[0],
        "data": pixels.tobytes(),
    }


def fill_image(msg: Any, pixels: np.ndarray, encoding: str | None = None) -> Any:
    """Write ``pixels`` into an Image message (rclpy or any object with Image's fields); returns it."""
    for name, value in image_fields(pixels, encoding).items():
        setattr(msg, name, value)
    return msg
