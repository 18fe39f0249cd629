"""``make demo``'s entry point, live (node over ROS 2) and offline, on tiny drives."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

DEMO = str(Path(sys.executable).parent / "psfusion-demo")


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PSFUSION_CHECKPOINT"}
    return {**env, "HOME": str(tmp_path), **extra}


def test_live_demo_runs_the_node_and_reports(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = subprocess.run([DEMO, "--out", str(out), "--frames", "3", "--size", "128x160", "--rate", "4"],
                            capture_output=True, text=True, timeout=300, env=_env(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr + (out / "node.log").read_text()
    assert "untrained weights" in result.stdout
    report = json.loads((out / "report.json").read_text())
    assert report["mode"] == "live ROS 2" and report["trained"] is False
    assert report["frames_published"] == 6 and report["frames_fused"] >= 1
    assert report["sustainable_rate_hz"] > 0 and report["playback_rate_hz"] <= 4
    assert report["cpu_limited"] == (report["playback_rate_hz"] < 4)
    assert report["sync"]["matched pairs"] >= 4 and report["node_exit_code"] == 0
    registration = report["registration"]  # estimated from the frames: no point pairs anywhere
    assert registration["method"].startswith("auto") and registration["confidence"] >= 0.5
    assert registration["residual_after_calibration_px"] < 2.5 < registration["misalignment_corrected_px"]
    assert "registered the cameras from the frames" in result.stdout
    assert report["latency_ms"]["p50"] > 0 and report["throughput_hz"] > 0
    preview = np.asarray(Image.open(out / "preview.png"))
    assert preview.shape == (128, 5 * 160, 3)  # visible | infrared | fused | mask | registration check
    ir_panel, vi_panel = preview[20:, 160:320].astype(int), preview[20:, :160].astype(int)
    assert np.abs(ir_panel[..., 0] - ir_panel[..., 2]).max() == 0  # grey infrared
    assert np.abs(vi_panel[..., 0] - vi_panel[..., 2]).max() > 10  # colour visible
    assert "stopped cleanly" in (out / "node.log").read_text()


def test_offline_demo_uses_a_checkpoint_from_the_environment(tmp_path: Path, official_checkpoint: Path) -> None:
    out = tmp_path / "demo"
    result = subprocess.run([DEMO, "--offline", "--out", str(out), "--frames", "2", "--size", "64x96"],
                            capture_output=True, text=True, timeout=300,
                            env=_env(tmp_path, PSFUSION_CHECKPOINT=str(official_checkpoint)))
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["trained"] is True and str(official_checkpoint) in report["weights"]
    assert report["pairs"] == 2 and report["network_size"] == [64, 96] and "note" not in report
    assert "untrained" not in result.stdout
    assert abs(sum(report["preview_class_fractions"].values()) - 1.0) < 1e-3
    assert np.asarray(Image.open(out / "preview.png")).shape == (64, 4 * 96, 3)
