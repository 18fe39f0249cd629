"""CompressedImage decoding: image_transport's format strings, the same frames as the raw decoder, and every hostile
payload (corrupt, truncated, a decompression bomb, an unknown format, a colour JPEG on a mono16 topic) is one
ImageDecodeError line. The fuzz test holds both decoders to that for mutated real JPEG/PNG files."""

from __future__ import annotations

import struct
import zlib
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from psfusion_ros.errors import ImageDecodeError
from psfusion_ros.io.compressed import MAX_PIXELS, encode_compressed, header_size, parse_format
from psfusion_ros.io.image_codec import decode_rgb, decode_thermal, fill_image

RNG = np.random.default_rng(7)
RGB = cv2.GaussianBlur(RNG.integers(0, 256, (48, 64, 3), dtype=np.uint8), (5, 5), 0)
MONO16 = RNG.integers(0, 65536, (48, 64), dtype=np.uint16)


def _msg(fmt: str, data: bytes) -> SimpleNamespace:
    return SimpleNamespace(format=fmt, data=data, header=None)


def _compressed(pixels: np.ndarray, codec: str, **kw: int) -> SimpleNamespace:
    return _msg(*encode_compressed(pixels, codec, **kw))


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / mse)) if mse else float("inf")


def test_image_transport_format_strings_are_written_and_read() -> None:
    assert encode_compressed(RGB, "jpeg")[0] == "rgb8; jpeg compressed bgr8"
    assert encode_compressed(RGB, "png")[0] == "rgb8; png compressed bgr8"
    assert encode_compressed(MONO16, "png")[0] == "mono16; png compressed "
    assert parse_format("rgb8; jpeg compressed bgr8") == ("rgb8", "jpeg")
    assert parse_format("mono16; png compressed ") == ("mono16", "png")
    assert parse_format("jpeg") == (None, "jpeg") and parse_format("PNG") == (None, "png")
    for bad in ("h264", "16UC1; compressedDepth png", "rgb8; tiff compressed bgr8", "rgb8;"):
        with pytest.raises(ImageDecodeError, match="unknown compressed format"):
            parse_format(bad)


def test_the_same_frames_as_the_raw_decoder() -> None:
    raw_rgb = decode_rgb(fill_image(SimpleNamespace(), RGB, "rgb8"))
    png = decode_rgb(_compressed(RGB, "png"))
    assert png.dtype == np.uint8 and png.flags.c_contiguous and np.array_equal(png, raw_rgb)
    jpeg = decode_rgb(_compressed(RGB, "jpeg"))
    assert jpeg.shape == RGB.shape and _psnr(jpeg, RGB) > 30  # lossy, not a channel swap (that is ~10 dB)
    swapped = decode_rgb(_msg("rgb8; jpeg compressed bgr8", cv2.imencode(".jpg", RGB)[1].tobytes()))
    assert _psnr(swapped, RGB) < _psnr(jpeg, RGB) - 5  # the stored order is BGR, as image_transport writes it

    thermal = decode_thermal(_compressed(MONO16, "png"))
    assert thermal.dtype == np.uint16 and np.array_equal(thermal, MONO16)  # 16-bit PNG is lossless
    mono8 = MONO16 >> 8
    assert np.array_equal(decode_thermal(_compressed(mono8.astype(np.uint8), "png")), mono8)
    # a colourised thermal JPEG (bgr8) is reduced to luma like the raw path
    luma = decode_thermal(_compressed(RGB, "png"))
    assert np.array_equal(luma, decode_thermal(fill_image(SimpleNamespace(), RGB, "rgb8")))
    # a plain "jpeg" format from an older driver
    assert decode_rgb(_msg("jpeg", _compressed(RGB, "jpeg").data)).shape == RGB.shape


def _png_declaring(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 4096, 9))
            + chunk(b"IEND", b""))


HOSTILE = [
    ("mono8; png compressed ", _png_declaring(60_000, 60_000), decode_thermal, "refused before decoding"),
    ("rgb8; jpeg compressed bgr8", _compressed(RGB, "jpeg").data[:-400], decode_rgb, "truncated JPEG"),
    ("rgb8; png compressed bgr8", _compressed(RGB, "png").data[:-300], decode_rgb, "truncated PNG"),
    ("rgb8; jpeg compressed bgr8", _compressed(RGB, "jpeg").data[:2], decode_rgb, "neither JPEG nor PNG"),
    ("rgb8; png compressed bgr8", b"\x89PNG\r\n\x1a\n" + bytes(40), decode_rgb, "truncated PNG"),
    ("rgb8; jpeg compressed bgr8", b"not an image at all", decode_rgb, "neither JPEG nor PNG"),
    ("rgb8; jpeg compressed bgr8", b"", decode_rgb, "empty"),
    ("h264", _compressed(RGB, "jpeg").data, decode_rgb, "unknown compressed format"),
    ("rgb8; png compressed bgr8", _compressed(RGB, "jpeg").data, decode_rgb, "format says png but the data is JPEG"),
    ("mono16; jpeg compressed ", _compressed(MONO16.astype(np.uint8), "jpeg").data, decode_thermal,
     "JPEG cannot carry mono16"),
    ("mono16; png compressed ", _compressed(RGB, "png").data, decode_thermal, "declares mono16"),
    ("mono16; jpeg compressed bgr8", _compressed(RGB, "jpeg").data, decode_thermal, "JPEG cannot carry mono16"),
    ("rgb8; png compressed bgr16", _compressed(MONO16, "png").data, decode_rgb, "declares rgb8"),
    ("png", _compressed(MONO16, "png").data, decode_rgb, "16-bit compressed image cannot be a visible"),
]


@pytest.mark.parametrize(("fmt", "data", "decode", "reason"), HOSTILE, ids=[case[3] for case in HOSTILE])
def test_hostile_payloads_are_one_line_errors(fmt: str, data: bytes, decode, reason: str) -> None:  # noqa: ANN001
    with pytest.raises(ImageDecodeError, match=reason) as info:
        decode(_msg(fmt, data))
    assert "\n" not in str(info.value)


def test_a_corrupt_png_body_is_refused() -> None:
    data = bytearray(_compressed(RGB, "png").data)
    data[60:90] = bytes(30)  # inside IDAT: the CRC and the zlib stream break
    with pytest.raises(ImageDecodeError, match="corrupt PNG"):
        decode_rgb(_msg("rgb8; png compressed bgr8", bytes(data)))


def test_header_sizes_are_read_without_decoding() -> None:
    assert header_size(_compressed(RGB, "jpeg").data) == ("jpeg", 64, 48)
    assert header_size(_compressed(MONO16, "png").data) == ("png", 64, 48)
    assert header_size(_png_declaring(70_000, 1)) == ("png", 70_000, 1)
    assert 70_000 * 1 < MAX_PIXELS  # sizes under the limit are allowed through to the decoder


SEEDS = [_compressed(RGB, "jpeg").data, _compressed(RGB, "png").data, _compressed(MONO16, "png").data,
         _png_declaring(60_000, 60_000)]
FORMATS = st.one_of(st.sampled_from(["rgb8; jpeg compressed bgr8", "mono16; png compressed ", "jpeg", "png",
                                     "mono8; jpeg compressed ", "bgr8; png compressed bgr8", ""]),
                    st.text(max_size=30))


@st.composite
def _mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["flip", "cut", "insert", "zero"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[pos] ^= draw(st.integers(1, 255))
        elif kind == "cut":
            del data[pos:pos + draw(st.integers(1, 500))]
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=20))
        elif kind == "zero":
            data[pos:pos + 8] = bytes(8)
    return bytes(data)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(FORMATS, st.one_of(_mutated(), st.binary(max_size=512)))
def test_fuzzed_compressed_messages_give_pixels_or_one_line_errors(fmt: str, data: bytes) -> None:
    msg = _msg(fmt, data)
    for decode, ndim in ((decode_rgb, 3), (decode_thermal, 2)):
        try:
            pixels = decode(msg)
        except ImageDecodeError as exc:
            assert str(exc) and "\n" not in str(exc)
            continue
        assert pixels.ndim == ndim and pixels.size > 0
        assert pixels.dtype in ((np.uint8,) if ndim == 3 else (np.uint8, np.uint16))
