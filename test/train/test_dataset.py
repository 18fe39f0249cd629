"""Training data: derived targets on a drawn label, the reference's augmentations, bad samples reported."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from psfusion_ros.constants import BOUNDARY_DILATION, IGNORE_LABEL
from psfusion_ros.errors import ConfigError, DataError
from psfusion_ros.train.classes import load_class_set
from psfusion_ros.train.dataset import PairDataset, derive_targets, split_dir


def _drawn_label() -> np.ndarray:
    label = np.zeros((24, 30), np.uint8)
    label[6:16, 8:20] = 2  # a person
    label[18:22, 2:6] = IGNORE_LABEL  # unlabelled region: ignored, not an object
    return label


def test_binary_target_is_every_foreground_class_and_mask_follows_it() -> None:
    label = _drawn_label()
    bi, _, mask = derive_targets(label)
    assert bi.dtype == np.uint8 and mask.dtype == np.float32
    assert bi.sum() == 10 * 12 and bi[6:16, 8:20].all()
    assert bi[18:22, 2:6].sum() == 0  # the ignore label is not foreground
    assert np.array_equal(mask, bi.astype(np.float32))


def test_boundary_target_is_the_class_edges_dilated() -> None:
    assert BOUNDARY_DILATION == 1  # the band below is worked out for one pixel of dilation
    _, bd, _ = derive_targets(_drawn_label())
    # Edges: the person's outermost rows/columns (6, 15 / 8, 19) and the pixels just outside them (5, 16 / 7, 20)
    # where a 4-neighbour differs; a 3x3 dilation widens that ring by one pixel each way. Corners of the
    # outer ring are not edges (only a diagonal neighbour differs), so columns 6 and 21 stop a row short.
    expected = np.zeros_like(bd)
    expected[4:18, 7:21] = 1
    expected[5:17, [6, 21]] = 1
    expected[8:14, 10:18] = 0
    assert np.array_equal(bd[:16], expected[:16])  # rows 16+ also see the ignore square's edges
    assert bd[17:23, 1:7].all()  # the small ignore square is all edge after dilation
    assert bd[:, 23:].sum() == 0 and bd[:3].sum() == 0  # far background


def _write(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def _aligned_set(root: Path, size: tuple[int, int] = (80, 112), names: tuple[str, ...] = ("a.png", "b.png"),
                 extra: bool = False) -> Path:
    """Pairs whose visible red channel, infrared and label all encode the same class map (aligned by design)."""
    rng = np.random.default_rng(0)
    for name in names:
        label = rng.integers(0, 4, (size[0] // 8, size[1] // 8)).repeat(8, 0).repeat(8, 1).astype(np.uint8)
        vi = np.stack([label * 60, label * 0 + 7, label * 0 + 9], -1).astype(np.uint8)
        _write(root / "vi" / name, vi)
        _write(root / "ir" / name, (label * 60).astype(np.uint8))
        _write(root / "label" / name, label)
        if extra:
            _write(root / "bi" / name, np.where(label == 3, 255, 0).astype(np.uint8))
            _write(root / "bd" / name, np.zeros_like(label))
            _write(root / "mask" / name, np.full_like(label, 128))
    return root


def test_augmentations_keep_images_and_targets_aligned(tmp_path: Path) -> None:
    ds = PairDataset(_aligned_set(tmp_path / "train"), crop=64, seed=3)
    seen_shapes = set()
    for epoch in range(6):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            item = ds[i]
            label = item["label"].numpy()
            seen_shapes.add(tuple(item["vi"].shape))
            assert np.array_equal(np.round(item["vi"][0].numpy() * 255).astype(int), label * 60)
            assert np.array_equal(np.round(item["ir"][0].numpy() * 255).astype(int), label * 60)
            bi, bd, mask = derive_targets(label.astype(np.uint8))
            # targets are derived before cropping, so edges at the crop border may differ; inside they agree
            assert np.array_equal(item["bi"].numpy(), bi)
            assert np.array_equal(item["bd"].numpy()[2:-2, 2:-2], bd[2:-2, 2:-2])
            assert np.array_equal(item["mask"][0].numpy(), mask)
    assert seen_shapes == {(3, 64, 64)}


def test_same_seed_epoch_and_index_give_the_same_sample_and_epochs_differ(tmp_path: Path) -> None:
    root = _aligned_set(tmp_path / "train", size=(160, 192))
    a, b = PairDataset(root, crop=64, seed=1), PairDataset(root, crop=64, seed=1)
    assert torch.equal(a[0]["vi"], b[0]["vi"])
    draws = set()
    for epoch in range(8):
        a.set_epoch(epoch)
        draws.add(a[0]["vi"].numpy().tobytes())
    assert len(draws) > 4  # different flips/rotations/crops from epoch to epoch


def test_images_not_larger_than_the_crop_are_resized_with_nearest_labels(tmp_path: Path) -> None:
    root = _aligned_set(tmp_path / "train", size=(40, 56))
    item = PairDataset(root, crop=64)[0]
    assert item["vi"].shape == (3, 64, 64) and item["label"].shape == (64, 64)
    assert set(np.unique(item["label"].numpy())) <= {0, 1, 2, 3}  # no blended ids


def test_pre_processed_target_folders_are_used_when_present(tmp_path: Path) -> None:
    root = _aligned_set(tmp_path / "train", extra=True)
    ds = PairDataset(root, crop=None, augment=False)
    assert ds.derived == []
    arrays = ds.load(0)
    assert np.array_equal(arrays["bi"], (arrays["label"] == 3).astype(np.uint8))  # from bi/, not derived
    assert arrays["bd"].sum() == 0
    assert np.allclose(arrays["mask"], 128 / 255)


def test_bad_samples_are_listed_with_their_paths_and_left_out(tmp_path: Path) -> None:
    root = _aligned_set(tmp_path / "train", names=("a.png", "b.png", "c.png", "d.png", "e.png"))
    (root / "ir" / "b.png").write_bytes((root / "ir" / "b.png").read_bytes()[:60])  # truncated
    _write(root / "vi" / "c.png", np.zeros((10, 10, 3), np.uint8))  # size differs from its infrared
    (root / "label" / "d.png").unlink()  # no label
    (root / "vi" / "e.png").rename(root / "vi" / "f.png")  # no partner at all
    ds = PairDataset(root, crop=64)
    assert [s.name for s in ds.samples] == ["a.png"]
    text = "\n".join(ds.problems)
    for fragment in ("ir/b.png: unreadable image", "vi/c.png: sizes differ", "vi/d.png: no label",
                     "e.png is in only one", "f.png is in only one"):
        assert fragment in text, text


def test_a_file_that_breaks_mid_epoch_is_replaced_and_reported(tmp_path: Path) -> None:
    root = _aligned_set(tmp_path / "train", names=("a.png", "b.png", "c.png"))
    ds = PairDataset(root, crop=64)
    (root / "vi" / "b.png").write_bytes(b"not an image any more")
    item = ds[1]
    assert item["name"] == "c.png" and "vi/b.png" in item["problem"]
    assert ds[0]["problem"] == ""


def test_labels_that_do_not_fit_the_class_set_are_refused_before_training(tmp_path: Path) -> None:
    root = _aligned_set(tmp_path / "train", names=("a.png", "b.png"))
    _write(root / "label" / "b.png", np.zeros((80, 112), np.uint8))  # only background: fits 3 classes
    ds = PairDataset(root, crop=64, num_classes=3)  # a.png uses ids 0..3
    assert [s.name for s in ds.samples] == ["b.png"]
    assert "label/a.png: class id 3 >= --num-classes 3" in ds.problems[0]
    _write(root / "label" / "b.png", np.zeros((80, 112, 3), np.uint8))  # a colour picture is no label
    ds = PairDataset(root, crop=64, num_classes=4)
    assert [s.name for s in ds.samples] == ["a.png"] and "label/b.png: a colour image" in ds.problems[0]
    with pytest.raises(DataError, match="no usable training pairs .*class id 3 >= --num-classes 3"):
        PairDataset(root, crop=64, num_classes=3)


def test_full_task_needs_labels_fusion_task_does_not(tmp_path: Path) -> None:
    root = _aligned_set(tmp_path / "pairs")
    for f in (root / "label").iterdir():
        f.unlink()
    (root / "label").rmdir()
    with pytest.raises(DataError, match="--task fusion"):
        PairDataset(split_dir(tmp_path / "pairs", "train"), task="full")
    ds = PairDataset(split_dir(tmp_path / "pairs", "train"), task="fusion", crop=64)
    assert set(ds[0]) == {"vi", "ir", "name", "problem"}
    with pytest.raises(DataError, match="no train/vi"):
        split_dir(tmp_path, "train")


def test_palette_file(tmp_path: Path) -> None:
    good = tmp_path / "p.yaml"
    good.write_text("classes:\n  - {name: background, color: [0, 0, 0]}\n  - {name: truck, color: [250, 10, 5]}\n")
    classes = load_class_set(good)
    assert classes.names == ("background", "truck") and len(classes) == 2
    assert classes.colorize(np.array([[0, 1, 7]], np.uint8)).tolist() == [[[0, 0, 0], [250, 10, 5],
                                                                            [255, 255, 255]]]
    for text, fragment in (("classes: 3", "expected 'classes:'"), ("classes:\n  - {name: a, color: [1, 2]}",
                                                                     "class 0"),
                           ("classes:\n  - {name: a, color: [1, 2, 300]}", "0..255"), ("{", "cannot read")):
        bad = tmp_path / "bad.yaml"
        bad.write_text(text)
        with pytest.raises(ConfigError, match=fragment):
            load_class_set(bad)
