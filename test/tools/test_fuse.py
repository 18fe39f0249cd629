"""``psfusion-fuse`` end to end: the reference test script's images, files and failure handling."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import DATA_DIR, SHARED_PAIRS, paper_pipeline
from psfusion_ros import load_checkpoint
from psfusion_ros.constants import MSRS_PALETTE
from psfusion_ros.pipeline.builder import build_pipeline
from psfusion_ros.pipeline.config import PipelineConfig
from psfusion_ros.tools.fuse import fuse_folders

FUSE_DATA = DATA_DIR / "fuse"
CLI = str(Path(sys.executable).parent / "psfusion-fuse")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=300)


def _load(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path)).astype(int)


def test_reproduces_reference_test_script_images(tmp_path: Path, official_checkpoint: Path) -> None:
    """``reference_fused/`` was written by the reference test_Fusion.py steps with the same weights."""
    out, seg = tmp_path / "fused", tmp_path / "seg"
    result = _run("--checkpoint", str(official_checkpoint), "--ir", str(FUSE_DATA / "ir"),
                  "--vi", str(FUSE_DATA / "vi"), "--out", str(out), "--seg-out", str(seg), "--device", "cpu")
    assert result.returncode == 0, result.stderr
    assert "fused 2 pairs" in result.stdout and "images/s" in result.stdout
    for reference in sorted((FUSE_DATA / "reference_fused").iterdir()):
        ours, theirs = _load(out / reference.name), _load(reference)
        assert ours.shape == theirs.shape == _load(FUSE_DATA / "vi" / reference.name).shape
        within_one = (np.abs(ours - theirs).max(axis=-1) <= 1).mean()
        assert within_one >= 0.99, f"{reference.name}: {within_one:.4f}"

        ids = _load(seg / "ids" / reference.name)
        colour = _load(seg / "color" / reference.name)
        assert ids.shape == ours.shape[:2] and ids.max() < 9
        assert np.array_equal(colour, np.asarray(MSRS_PALETTE)[ids])


def test_batches_give_the_same_images(tmp_path: Path, official_checkpoint: Path) -> None:
    pipeline = paper_pipeline(load_checkpoint(official_checkpoint))
    data = tmp_path / "data"
    for sub in ("ir", "vi"):
        (data / sub).mkdir(parents=True)
        for k in range(3):  # three 64x96 copies: batchable
            shutil.copy(FUSE_DATA / sub / "scene_1.png", data / sub / f"copy{k}.png")
    one = fuse_folders(pipeline, data / "ir", data / "vi", tmp_path / "one", batch_size=1, progress=False)
    two = fuse_folders(pipeline, data / "ir", data / "vi", tmp_path / "two", batch_size=2, progress=False)
    assert one.fused == two.fused == ["copy0.png", "copy1.png", "copy2.png"]
    for name in one.fused:
        assert np.abs(_load(tmp_path / "one" / name) - _load(tmp_path / "two" / name)).max() <= 1


def test_bad_pairs_are_skipped_and_reported(tmp_path: Path, official_checkpoint: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(FUSE_DATA / "ir", data / "ir")
    shutil.copytree(FUSE_DATA / "vi", data / "vi")
    (data / "ir" / "scene_0.png").write_bytes(b"not a png")  # corrupt thermal
    shutil.copy(FUSE_DATA / "ir" / "scene_1.png", data / "ir" / "lonely.png")  # no visible partner
    result = _run("--checkpoint", str(official_checkpoint), "--ir", str(data / "ir"), "--vi", str(data / "vi"),
                  "--out", str(tmp_path / "out"), "--no-progress")
    assert result.returncode == 1
    assert "skipped" in result.stderr and "scene_0.png" in result.stderr and "cannot read image" in result.stderr
    assert "1 files have no partner of the same name" in result.stderr and "1 unmatched" in result.stdout
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["scene_1.png"]


def test_usage_errors_are_one_line(tmp_path: Path, official_checkpoint: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = _run("--checkpoint", str(official_checkpoint), "--ir", str(empty), "--vi", str(empty),
                  "--out", str(tmp_path / "o"))
    assert result.returncode == 2 and "no image file names appear in both" in result.stderr
    result = _run("--checkpoint", str(official_checkpoint), "--ir", str(tmp_path / "missing"),
                  "--vi", str(empty), "--out", str(tmp_path / "o"))
    assert result.returncode == 2 and "no such directory" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.skipif(not SHARED_PAIRS.is_dir(), reason="../shared sample pairs not present")
def test_real_tno_pair_with_grey_visible(tmp_path: Path, official_checkpoint: Path) -> None:
    config = PipelineConfig(network_size=(128, 160), resample="paper").with_params({"device": "cpu"})
    pipeline = build_pipeline(config, model=load_checkpoint(official_checkpoint))
    data = tmp_path / "tno"
    for sub in ("ir", "vi"):
        (data / sub).mkdir(parents=True)
        shutil.copy(SHARED_PAIRS / "tno" / sub / "05.png", data / sub / "05.png")
    summary = fuse_folders(pipeline, data / "ir", data / "vi", tmp_path / "out", progress=False)
    fused = _load(tmp_path / "out" / "05.png")
    assert summary.fused == ["05.png"] and fused.shape == _load(data / "vi" / "05.png").shape[:2] + (3,)
    # A grey visible image has neutral chroma, so the fused colour image is grey too.
    assert np.abs(fused[..., 0] - fused[..., 2]).max() <= 1
