"""Fuzzing the decoders the node runs on every message: whatever an Image holds, out comes pixels of the promised
shape and type, or ImageDecodeError with a one-line reason. Nothing else, ever."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from psfusion_ros.errors import ImageDecodeError
from psfusion_ros.io.image_codec import SUPPORTED_ENCODINGS, decode_rgb, decode_thermal

ENCODINGS = st.one_of(st.sampled_from(SUPPORTED_ENCODINGS),
                      st.sampled_from(["bayer_rggb8", "16UC3", "mono32", "", "RGB8", "yuv420"]),
                      st.text(max_size=12))
SIDES = st.one_of(st.integers(-3, 40), st.sampled_from([0, 1, 2**31 - 1, 2**32 + 5, -(2**31)]))
DATA = st.one_of(st.binary(max_size=4096), st.builds(lambda n: bytes(n), st.integers(0, 20_000)))


def _message(encoding: str, width: int, height: int, step: int, big: int, data: bytes) -> SimpleNamespace:
    return SimpleNamespace(encoding=encoding, width=width, height=height, step=step, is_bigendian=big, data=data)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ENCODINGS, SIDES, SIDES, st.one_of(st.integers(-4, 200), SIDES), st.integers(0, 3), DATA)
def test_decoders_return_pixels_or_a_one_line_decode_error(encoding, width, height, step, big, data) -> None:
    msg = _message(encoding, width, height, step, big, data)
    for decode, check in ((decode_rgb, _is_rgb), (decode_thermal, _is_thermal)):
        try:
            pixels = decode(msg)
        except ImageDecodeError as exc:
            assert str(exc) and "\n" not in str(exc)
            continue
        assert check(pixels, height, width), (encoding, pixels.shape, pixels.dtype)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(SUPPORTED_ENCODINGS), st.integers(1, 9), st.integers(1, 9), st.integers(0, 7),
       st.booleans(), st.data())
def test_well_formed_messages_of_every_encoding_decode(encoding, width, height, pad, big, data) -> None:
    item = {"u1": 1, "u2": 2, "f4": 4}
    from psfusion_ros.io.image_codec import _LAYOUTS  # the layout table is what a well-formed message follows

    dtype, channels = _LAYOUTS[encoding]
    step = width * channels * item[dtype] + pad
    payload = data.draw(st.binary(min_size=step * height, max_size=step * height))
    msg = _message(encoding, width, height, step, int(big), payload)
    if encoding in ("yuv422", "uyvy", "yuv422_yuy2", "yuyv") and width % 2:
        return  # odd widths are refused (covered above)
    rgb = decode_rgb(msg) if encoding != "32FC1" and encoding not in ("mono16", "16UC1") else None
    if rgb is not None:
        assert _is_rgb(rgb, height, width)
    if channels in (1, 3, 4) or encoding in ("yuv422", "uyvy", "yuv422_yuy2", "yuyv"):
        if encoding in ("rgb8", "bgr8", "8UC3", "rgba8", "bgra8", "8UC4", "mono8", "8UC1", "mono16", "16UC1", "32FC1"):
            assert _is_thermal(decode_thermal(msg), height, width)


def test_a_list_of_ints_and_numpy_buffers_are_accepted() -> None:
    pixels = np.arange(12, dtype=np.uint8).reshape(3, 4)
    for data in (list(pixels.ravel()), pixels.ravel(), bytearray(pixels.tobytes())):
        out = decode_thermal(_message("mono8", 4, 3, 4, 0, data))
        assert np.array_equal(out, pixels)
    try:
        decode_thermal(_message("mono8", 4, 3, 4, 0, ["a"] * 12))
    except ImageDecodeError as exc:
        assert "not a byte buffer" in str(exc)
    else:
        raise AssertionError("a list of strings decoded")


def _is_rgb(pixels: np.ndarray, height: int, width: int) -> bool:
    return pixels.shape == (height, width, 3) and pixels.dtype == np.uint8 and pixels.flags.c_contiguous


def _is_thermal(pixels: np.ndarray, height: int, width: int) -> bool:
    return pixels.shape == (height, width) and pixels.dtype in (np.uint8, np.uint16, np.float32)
