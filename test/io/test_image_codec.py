"""Image ↔ numpy without cv_bridge: encodings, padding, byte order, and malformed messages."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from psfusion_ros.io.image_codec import (
    ImageDecodeError,
    decode_image,
    fill_image,
    image_fields,
    to_rgb,
    to_thermal,
)


def _msg(pixels: np.ndarray, encoding: str, pad: int = 0, bigendian: bool = False) -> SimpleNamespace:
    rows = pixels.reshape(pixels.shape[0], -1)
    if bigendian:
        rows = rows.astype(rows.dtype.newbyteorder(">"))
    raw = rows.view(np.uint8).reshape(pixels.shape[0], -1)
    padded = np.zeros((raw.shape[0], raw.shape[1] + pad), np.uint8)
    padded[:, : raw.shape[1]] = raw
    return SimpleNamespace(height=pixels.shape[0], width=pixels.shape[1], encoding=encoding,
                           is_bigendian=int(bigendian), step=padded.shape[1], data=padded.tobytes())


@pytest.mark.parametrize(
    ("encoding", "dtype", "channels"),
    [("mono8", np.uint8, 1), ("8UC1", np.uint8, 1), ("mono16", np.uint16, 1), ("16UC1", np.uint16, 1),
     ("32FC1", np.float32, 1), ("rgb8", np.uint8, 3), ("bgr8", np.uint8, 3), ("rgba8", np.uint8, 4),
     ("bgra8", np.uint8, 4)],
)
@pytest.mark.parametrize("pad", [0, 6])
def test_round_trip_with_row_padding(encoding: str, dtype: type, channels: int, pad: int) -> None:
    rng = np.random.default_rng(0)
    shape = (5, 7) if channels == 1 else (5, 7, channels)
    pixels = (rng.random(shape) * 1000).astype(dtype)
    decoded = decode_image(_msg(pixels, encoding, pad=pad))
    assert decoded.dtype == dtype and np.array_equal(decoded, pixels)


def test_decoding_is_zero_copy_when_byte_order_is_native() -> None:
    pixels = np.arange(12, dtype=np.uint16).reshape(3, 4)
    msg = _msg(pixels, "mono16")
    msg.data = np.frombuffer(msg.data, np.uint8)  # rosbags hands out numpy buffers
    decoded = decode_image(msg)
    assert np.shares_memory(decoded, msg.data)


def test_big_endian_mono16_is_swapped() -> None:
    pixels = np.array([[1, 256, 4000, 65535]], np.uint16)
    msg = _msg(pixels, "mono16", bigendian=True)
    assert msg.data[:2] == b"\x00\x01"
    assert np.array_equal(decode_image(msg), pixels)


def test_visible_conversions_to_rgb() -> None:
    rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255]]], np.uint8)
    assert np.array_equal(to_rgb(rgb[..., ::-1].copy(), "bgr8"), rgb)
    rgba = np.concatenate([rgb, np.full((1, 3, 1), 7, np.uint8)], axis=2)
    assert np.array_equal(to_rgb(rgba, "rgba8"), rgb)
    assert np.array_equal(to_rgb(rgba[..., [2, 1, 0, 3]].copy(), "bgra8"), rgb)
    grey = to_rgb(np.array([[10, 200]], np.uint8), "mono8")
    assert grey.shape == (1, 2, 3) and (grey[..., 0] == grey[..., 2]).all()
    assert to_rgb(rgb[..., ::-1].copy(), "bgr8").flags.c_contiguous


def test_uyvy_and_yuyv_match_opencv() -> None:
    rgb = (np.random.default_rng(1).random((4, 8, 3)) * 255).astype(np.uint8)
    yuv = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV)
    uyvy = np.zeros((4, 8, 2), np.uint8)
    uyvy[..., 1] = yuv[..., 0]
    uyvy[:, 0::2, 0] = yuv[:, 0::2, 1]
    uyvy[:, 1::2, 0] = yuv[:, 0::2, 2]
    decoded = to_rgb(decode_image(_msg(uyvy, "yuv422")), "yuv422")
    assert decoded.shape == (4, 8, 3)
    assert np.array_equal(decoded, cv2.cvtColor(uyvy, cv2.COLOR_YUV2RGB_UYVY))
    yuyv = uyvy[..., ::-1].copy()
    assert np.array_equal(to_rgb(decode_image(_msg(yuyv, "yuv422_yuy2")), "yuv422_yuy2"),
                          cv2.cvtColor(yuyv, cv2.COLOR_YUV2RGB_YUYV))


def test_thermal_accepts_counts_and_temperatures_and_reduces_colour() -> None:
    counts = np.array([[100, 16000]], np.uint16)
    assert to_thermal(counts, "mono16") is counts
    colour = np.full((2, 2, 3), 100, np.uint8)
    assert to_thermal(colour, "rgb8").shape == (2, 2)
    assert to_thermal(np.full((2, 2, 2), 128, np.uint8), "yuv422").shape == (2, 2)  # YUV thermal: its luma
    with pytest.raises(ImageDecodeError):
        to_thermal(np.zeros((2, 2, 3), np.uint16), "16UC3")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"encoding": "bayer_rggb8"}, "unsupported encoding 'bayer_rggb8'"),
        ({"height": 0}, "empty image"),
        ({"step": 3}, "step 3 is smaller"),
        ({"data": b"\x00" * 10}, "truncated data: 10 bytes"),
    ],
)
def test_malformed_messages_raise_one_line_errors(change: dict, message: str) -> None:
    msg = _msg(np.zeros((4, 4), np.uint16), "mono16")
    for key, value in change.items():
        setattr(msg, key, value)
    with pytest.raises(ImageDecodeError, match=message) as exc:
        decode_image(msg)
    assert "\n" not in str(exc.value)


def test_fill_image_sets_consistent_fields() -> None:
    pixels = np.zeros((3, 5, 3), np.uint8)
    msg = fill_image(SimpleNamespace(), pixels)
    assert (msg.encoding, msg.height, msg.width, msg.step, len(msg.data)) == ("rgb8", 3, 5, 15, 45)
    assert image_fields(np.zeros((2, 2), np.uint16))["is_bigendian"] == int(sys.byteorder == "big")
    with pytest.raises(ValueError):
        image_fields(np.zeros((2, 2), np.uint8), "rgb8")
