"""Network-size rules (the reference's ``w - w % 32``) and resampling."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from psfusion_ros.pipeline.resize import (
    check_network_size,
    floor_to_multiple,
    parse_size,
    resize_image,
    resize_labels,
)


@pytest.mark.parametrize(
    ("size", "expected"),
    [((480, 640), (480, 640)), ((576, 768), (576, 768)), ((327, 521), (320, 512)), ((63, 95), (32, 64))],
)
def test_floor_to_multiple_of_32(size: tuple[int, int], expected: tuple[int, int]) -> None:
    assert floor_to_multiple(*size) == expected


def test_too_small_images_are_rejected() -> None:
    with pytest.raises(ValueError, match="smaller than the network minimum"):
        floor_to_multiple(31, 640)


def test_parse_size() -> None:
    assert parse_size("480x640") == (480, 640)
    assert parse_size(" 256X320 ") == (256, 320)
    for bad in ("480x650", "abc", "0x64", "480"):
        with pytest.raises(ValueError):
            parse_size(bad)
    with pytest.raises(ValueError, match="multiples of 32"):
        check_network_size((100, 64))


def test_paper_resampling_is_pil_bicubic_and_fast_is_close() -> None:
    rng = np.random.default_rng(0)
    image = (rng.random((70, 100, 3)) * 255).astype(np.uint8)
    paper = resize_image(image, (64, 96), "paper")
    expected = np.asarray(Image.fromarray(image).resize((96, 64), Image.BICUBIC))
    assert paper.dtype == np.uint8 and np.array_equal(paper, expected)
    smooth = np.tile(np.linspace(0, 255, 100, dtype=np.float32), (70, 1))
    fast = resize_image(smooth, (64, 96), "fast")
    assert fast.shape == (64, 96) and np.abs(fast - resize_image(smooth, (64, 96), "paper")).max() < 3
    assert resize_image(image, (70, 100)) is image
    with pytest.raises(ValueError, match="unknown resampler"):
        resize_image(image, (64, 96), "lanczos")


def test_label_resize_never_invents_classes() -> None:
    labels = np.zeros((64, 96), np.uint8)
    labels[:, 48:] = 8
    out = resize_labels(labels, (70, 100))
    assert out.shape == (70, 100) and set(np.unique(out)) == {0, 8}


def test_tensor_resize_matches_opencv_bilinear_when_growing() -> None:
    image = np.random.default_rng(1).random((48, 64)).astype(np.float32)
    tensor = resize_image(torch.from_numpy(image), (96, 128), "fast")
    assert isinstance(tensor, torch.Tensor) and tensor.shape == (96, 128)
    assert np.abs(tensor.numpy() - resize_image(image, (96, 128), "fast")).max() < 1e-4
    rgb = torch.rand(48, 64, 3)
    assert resize_image(rgb, (32, 32), "fast").shape == (32, 32, 3)
    with pytest.raises(ValueError, match="tensors are resized"):
        resize_image(rgb, (32, 32), "paper")
