"""``make demo``'s entry point on a tiny drive."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

DEMO = str(Path(sys.executable).parent / "psfusion-demo")


def test_demo_writes_report_and_preview_and_says_weights_are_untrained(tmp_path: Path) -> None:
    env = {"PATH": str(Path(sys.executable).parent), "HOME": str(tmp_path)}
    result = subprocess.run([DEMO, "--out", str(tmp_path / "demo"), "--frames", "2", "--size", "64x96"],
                            capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    assert "untrained weights" in result.stdout
    report = json.loads((tmp_path / "demo" / "report.json").read_text())
    assert report["trained"] is False and "untrained" in report["weights"]
    assert report["pairs"] == 2 and report["network_size"] == [64, 96]
    assert report["images_per_second"] > 0
    assert abs(sum(report["preview_class_fractions"].values()) - 1.0) < 1e-3
    preview = np.asarray(Image.open(tmp_path / "demo" / "preview.png"))
    assert preview.shape == (64, 4 * 96, 3)
    # The infrared panel is grey, the visible panel is not.
    ir_panel, vi_panel = preview[20:, 96:192].astype(int), preview[20:, :96].astype(int)
    assert np.abs(ir_panel[..., 0] - ir_panel[..., 2]).max() == 0
    assert np.abs(vi_panel[..., 0] - vi_panel[..., 2]).max() > 10


def test_demo_uses_a_checkpoint_from_the_environment(tmp_path: Path, official_checkpoint: Path) -> None:
    env = {"PATH": str(Path(sys.executable).parent), "HOME": str(tmp_path),
           "PSFUSION_CHECKPOINT": str(official_checkpoint)}
    result = subprocess.run([DEMO, "--out", str(tmp_path / "demo"), "--frames", "1", "--size", "64x96"],
                            capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "demo" / "report.json").read_text())
    assert report["trained"] is True and str(official_checkpoint) in report["weights"]
    assert "untrained" not in result.stdout
