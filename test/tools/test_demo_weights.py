"""Demo weights' cache rules, with a one-step training run at a tiny size (the real settings train for minutes)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from psfusion_ros.harness.synthetic import CAR, CURVE, LIGHTINGS, PERSON, synthetic_frame, write_drive_dataset
from psfusion_ros.io.image_files import read_image
from psfusion_ros.model.checkpoint import load_checkpoint, save_checkpoint
from psfusion_ros.model.psfusion import PSFusion
from psfusion_ros.tools import demo_weights as dw

TINY = dw.DemoTraining(steps=1, crop=32, batch_size=2, train_pairs=2, height=64, width=96)


def test_cache_is_used_then_rebuilt_when_broken_or_foreign(tmp_path: Path) -> None:
    lines: list[str] = []
    first = dw.demo_weights(TINY, tmp_path, lines.append)
    assert first.trained_now and first.path.exists() and first.path.parent == tmp_path
    assert any("learning demo weights on the synthetic drive, once" in line for line in lines)
    assert load_checkpoint(first.path, num_classes=None).num_classes == 9
    written = first.path.stat().st_mtime_ns

    lines.clear()
    again = dw.demo_weights(TINY, tmp_path, lines.append)
    assert not again.trained_now and again.path == first.path and first.path.stat().st_mtime_ns == written
    assert lines == [f"using cached demo weights {first.path}"]

    first.path.write_bytes(first.path.read_bytes()[:1000])  # a broken file (an interrupted copy, a full disk)
    lines.clear()
    rebuilt = dw.demo_weights(TINY, tmp_path, lines.append)
    assert rebuilt.trained_now and any("rebuilding the cached demo weights" in line for line in lines)
    load_checkpoint(rebuilt.path, num_classes=None)

    torch.manual_seed(3)  # a loadable PSFusion checkpoint, but made for other settings
    save_checkpoint(PSFusion(), first.path, {"demo_key": "0123456789abcdef"})
    assert "not made with these settings" in dw.cached(first.path, dw.cache_key(TINY))
    lines.clear()
    assert dw.demo_weights(TINY, tmp_path, lines.append).trained_now
    assert dw.cached(first.path, dw.cache_key(TINY)) is None
    assert not list(tmp_path.glob("*.partial"))


def test_the_key_covers_what_changes_the_result(monkeypatch) -> None:
    key = dw.cache_key(TINY)
    assert dw.cache_key(replace(TINY)) == key
    for change in ({"steps": 2}, {"lr": 2e-3}, {"generator_seed": 5}, {"seed": 1}, {"freeze_encoders": False},
                   {"crop": 64}, {"height": 96}):
        assert dw.cache_key(replace(TINY, **change)) != key, change
    monkeypatch.setattr(dw, "__version__", "9.9.9")
    assert dw.cache_key(TINY) != key
    monkeypatch.undo()
    monkeypatch.setattr(dw, "GENERATOR_VERSION", dw.GENERATOR_VERSION + 1)
    assert dw.cache_key(TINY) != key


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PSFUSION_CACHE", str(tmp_path / "c"))
    assert dw.default_cache_dir() == tmp_path / "c" / "demo_weights"
    monkeypatch.delenv("PSFUSION_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert dw.default_cache_dir() == tmp_path / "x" / "psfusion_ros" / "demo_weights"


def test_the_drive_dataset_has_labels_and_varied_scenes(tmp_path: Path) -> None:
    root = write_drive_dataset(tmp_path / "d", train=3, test=1, height=96, width=128, seed=1)
    names = sorted(p.name for p in (root / "train" / "vi").iterdir())
    assert len(names) == 3 and len(list((root / "test" / "label").iterdir())) == 1
    label = read_image(root / "train" / "label" / names[0], "L")
    assert {0, CAR, PERSON, CURVE} <= set(np.unique(label).tolist())
    brightness = [read_image(root / "train" / "vi" / n, "RGB").mean() for n in names]  # dusk, night, glare
    assert LIGHTINGS == ("dusk", "night", "glare") and brightness[1] < 0.6 * brightness[0] < brightness[2]
    ir = read_image(root / "train" / "ir" / names[0], "L")
    assert ir.shape == (96, 128) and ir[label == PERSON].mean() > ir[label == 0].mean() + 40  # hot pedestrians
    # the demo drive (seed 0) is not among the training scenes
    assert not np.array_equal(read_image(root / "train" / "vi" / names[0], "RGB"),
                              synthetic_frame(0, 96, 128, seed=0).visible)


def test_an_unknown_optimizer_is_a_config_error(tmp_path: Path) -> None:
    import pytest

    from psfusion_ros.errors import ConfigError
    from psfusion_ros.train.trainer import TrainConfig

    with pytest.raises(ConfigError, match="--optimizer 'rmsprop'"):
        TrainConfig(dataroot=str(tmp_path), out=str(tmp_path / "o"), optimizer="rmsprop").check()
