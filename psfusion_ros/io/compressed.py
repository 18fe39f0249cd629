"""sensor_msgs/CompressedImage ↔ numpy, as image_transport's ``compressed`` plugin writes and reads it.

The ``format`` field is image_transport's: ``"<encoding>; jpeg compressed bgr8"`` / ``"<encoding>; png compressed
[bgr8|bgr16]"`` (colour is stored BGR; mono is stored as is), or a bare ``"jpeg"`` / ``"png"`` from older drivers.
The container is identified by its magic bytes and its declared size is read from the header *before* anything
is allocated, so a 60000×60000 PNG of a few hundred bytes (a decompression bomb) is refused, not decoded. The
frames returned are the ones :mod:`psfusion_ros.io.image_codec` returns for the raw message of the same image,
so nothing downstream knows which transport a camera used. Every failure is one :class:`ImageDecodeError` line.
"""

from __future__ import annotations

import struct
from typing import Any

import cv2
import numpy as np

from psfusion_ros.errors import ImageDecodeError

#: More pixels than any camera on a vehicle (8K is 33 Mpx): a header declaring this many is refused unread.
MAX_PIXELS = 40_000_000
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"
COLOR_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "8UC3", "8UC4", "rgb16", "bgr16", "rgba16", "bgra16")
#: JPEG start-of-frame markers (baseline, progressive, lossless, arithmetic): they carry height and width.
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def parse_format(text: str) -> tuple[str | None, str | None]:
    """``format`` → (declared raw encoding or None, codec "jpeg"/"png" or None when the field does not say)."""
    text = str(text).strip()
    if not text:
        return None, None
    head, sep, tail = text.partition(";")
    if not sep:
        word = head.strip().lower()
        if word in ("jpeg", "jpg", "png"):
            return None, "png" if word == "png" else "jpeg"
        raise ImageDecodeError(f"unknown compressed format {text[:60]!r} (expected image_transport's "
                               "'<encoding>; jpeg|png compressed ...' or 'jpeg'/'png')")
    words = tail.strip().lower().split()
    codec = words[0] if words else ""
    if codec in ("jpg", "jpeg"):
        codec = "jpeg"
    if codec not in ("jpeg", "png") or "compressed" not in words:
        raise ImageDecodeError(f"unknown compressed format {text[:60]!r} (this node reads jpeg and png; "
                               "compressedDepth and other transports are not supported)")
    return head.strip() or None, codec


def header_size(data: bytes | memoryview) -> tuple[str, int, int]:
    """(codec, width, height) from the PNG IHDR or the JPEG start-of-frame, without decoding the image."""
    if bytes(data[:8]) == PNG_MAGIC:
        if len(data) < 24 or bytes(data[12:16]) != b"IHDR":
            raise ImageDecodeError("truncated PNG (no IHDR header)")
        width, height = struct.unpack(">II", bytes(data[16:24]))
        return "png", width, height
    if bytes(data[:3]) == JPEG_MAGIC:
        return ("jpeg", *_jpeg_size(bytes(data)))
    start = bytes(data[:8]).hex() or "nothing"
    raise ImageDecodeError(f"the data is neither JPEG nor PNG (starts with {start})")


def _jpeg_size(data: bytes) -> tuple[int, int]:
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise ImageDecodeError(f"corrupt JPEG (no marker at byte {pos})")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            pos += 2
            continue
        length = int.from_bytes(data[pos + 2:pos + 4], "big")
        if length < 2:
            raise ImageDecodeError(f"corrupt JPEG (segment length {length})")
        if marker in _SOF:
            if pos + 9 > len(data):
                break
            height, width = struct.unpack(">HH", data[pos + 5:pos + 9])
            return width, height
        pos += 2 + length
    raise ImageDecodeError("truncated JPEG (no frame header)")


def _complete(codec: str, data: bytes | memoryview) -> bool:
    """A whole file: libjpeg fills a truncated JPEG with grey and returns it, so the end marker is checked."""
    tail = bytes(data[-64:]).rstrip(b"\x00")  # some drivers pad the buffer
    return tail.endswith(b"\xff\xd9") if codec == "jpeg" else tail.endswith(b"IEND\xaeB`\x82")


def byte_buffer(data: Any) -> np.ndarray:
    """A message's ``data`` as a flat uint8 array (bytes, array.array('B'), numpy or a list of ints), zero-copy when
    it already is one; shared with the raw decoder."""
    if isinstance(data, np.ndarray):  # rosbags: zero-copy when already contiguous
        return np.ascontiguousarray(data).reshape(-1).view(np.uint8)
    try:
        return np.frombuffer(data, np.uint8)
    except TypeError:
        try:
            return np.asarray(data, dtype=np.uint8).reshape(-1)
        except (TypeError, ValueError, OverflowError):
            raise ImageDecodeError(f"data is not a byte buffer ({type(data).__name__})") from None


def decode_compressed(msg: Any) -> tuple[np.ndarray, str | None]:
    """(pixels as stored: BGR/BGRA/mono, 8 or 16 bit; declared raw encoding) of a CompressedImage."""
    try:
        declared, codec = parse_format(msg.format)
        buffer = byte_buffer(msg.data)
    except AttributeError:
        raise ImageDecodeError("not a CompressedImage message (no format/data)") from None
    if buffer.size == 0:
        raise ImageDecodeError("empty compressed image")
    found, width, height = header_size(memoryview(buffer))
    if codec is not None and codec != found:
        raise ImageDecodeError(f"format says {codec} but the data is {found.upper()}")
    if width <= 0 or height <= 0:
        raise ImageDecodeError(f"{found.upper()} header declares an empty image ({width}x{height})")
    if width * height > MAX_PIXELS:
        raise ImageDecodeError(f"{found.upper()} header declares {width}x{height} pixels (more than "
                               f"{MAX_PIXELS // 1_000_000} Mpx): refused before decoding")
    if not _complete(found, memoryview(buffer)):
        raise ImageDecodeError(f"truncated {found.upper()} ({buffer.size} bytes, no end marker)")
    try:
        pixels = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:
        raise ImageDecodeError(f"corrupt {found.upper()}: {str(exc).strip().splitlines()[-1][:120]}") from None
    if pixels is None:
        raise ImageDecodeError(f"corrupt {found.upper()} ({buffer.size} bytes): OpenCV cannot decode it")
    if pixels.shape[:2] != (height, width):
        raise ImageDecodeError(f"corrupt {found.upper()}: decoded {pixels.shape[1]}x{pixels.shape[0]}, header "
                               f"says {width}x{height}")
    if declared is not None and found == "jpeg" and declared in ("mono16", "16UC1"):
        raise ImageDecodeError("JPEG cannot carry mono16 (image_transport saturates it to 8 bits): "
                               "publish 16-bit thermal with png compression")
    return pixels, declared


def _check_declared(pixels: np.ndarray, declared: str | None) -> None:
    if declared is None:
        return
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    bits = 8 * pixels.dtype.itemsize
    if declared in COLOR_ENCODINGS:
        ok = channels >= 3
    elif declared in ("mono8", "8UC1", "mono16", "16UC1"):
        ok = channels == 1 and bits == (16 if declared in ("mono16", "16UC1") else 8)
    else:
        ok = True  # bayer and other declarations: the container's own layout decides
    if not ok:
        raise ImageDecodeError(f"format declares {declared} but the image holds {channels}-channel {bits}-bit data")


def compressed_rgb(msg: Any) -> np.ndarray:
    """A visible camera's CompressedImage as contiguous (H, W, 3) uint8 RGB (as the raw decoder returns)."""
    pixels, declared = decode_compressed(msg)
    _check_declared(pixels, declared)
    if pixels.dtype != np.uint8:
        raise ImageDecodeError(f"a {8 * pixels.dtype.itemsize}-bit compressed image cannot be a visible (RGB) image")
    if pixels.ndim == 2:
        return cv2.cvtColor(pixels, cv2.COLOR_GRAY2RGB)
    code = cv2.COLOR_BGRA2RGB if pixels.shape[2] == 4 else cv2.COLOR_BGR2RGB
    return cv2.cvtColor(pixels, code)


def compressed_thermal(msg: Any) -> np.ndarray:
    """A thermal camera's CompressedImage as (H, W) uint8 or uint16 (16-bit PNG is lossless)."""
    pixels, declared = decode_compressed(msg)
    _check_declared(pixels, declared)
    if pixels.ndim == 2:
        return pixels
    if pixels.dtype == np.uint8 and declared not in ("mono8", "8UC1", "mono16", "16UC1"):
        code = cv2.COLOR_BGRA2GRAY if pixels.shape[2] == 4 else cv2.COLOR_BGR2GRAY  # colourised thermal → luma
        return cv2.cvtColor(pixels, code)
    raise ImageDecodeError(f"a {pixels.shape[2]}-channel {8 * pixels.dtype.itemsize}-bit image cannot be a "
                           "thermal image")


def encode_compressed(pixels: np.ndarray, codec: str, jpeg_quality: int = 95, png_level: int = 3) -> tuple[str, bytes]:
    """(format, data) for a CompressedImage of an RGB8, mono8 or mono16 array, exactly as image_transport's
    compressed publisher writes them (colour stored BGR; its format strings, trailing space included; its
    defaults: JPEG quality 95, PNG level 3)."""
    if codec not in ("jpeg", "png"):
        raise ValueError(f"codec {codec!r}: expected 'jpeg' or 'png'")
    if pixels.ndim == 3 and pixels.shape[2] == 3 and pixels.dtype == np.uint8:
        encoding, stored, target = "rgb8", cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR), "bgr8"
    elif pixels.ndim == 2 and pixels.dtype in (np.uint8, np.uint16):
        encoding, stored, target = ("mono8" if pixels.dtype == np.uint8 else "mono16"), pixels, ""
        if codec == "jpeg" and pixels.dtype == np.uint16:
            raise ValueError("JPEG cannot carry mono16; use png")
    else:
        raise ValueError(f"cannot compress a {pixels.dtype} array of shape {pixels.shape}")
    params = ([cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)] if codec == "jpeg"
              else [cv2.IMWRITE_PNG_COMPRESSION, int(png_level)])
    ok, data = cv2.imencode(".jpg" if codec == "jpeg" else ".png", np.ascontiguousarray(stored), params)
    if not ok:
        raise ValueError(f"OpenCV could not encode a {codec} image")
    return f"{encoding}; {codec} compressed {target}", data.tobytes()


def is_compressed(msg: Any) -> bool:
    """A CompressedImage (``format`` + ``data``) rather than an Image (``encoding``, ``width``...)."""
    return hasattr(msg, "format") and not hasattr(msg, "encoding")
