"""``make demo``'s entry point, live (node over ROS 2) and offline, on tiny drives."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from psfusion_ros.harness.synthetic import PERSON, node_thermal_uint8, synthetic_frame
from psfusion_ros.tools.demo import fusion_evidence

DEMO = str(Path(sys.executable).parent / "psfusion-demo")


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PSFUSION_CHECKPOINT"}
    return {**env, "HOME": str(tmp_path), **extra}


def test_live_demo_runs_the_node_and_reports(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = subprocess.run([DEMO, "--out", str(out), "--frames", "3", "--size", "128x160", "--rate", "4",
                             "--untrained"],
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
    evidence = report["fusion_evidence"]  # measured on what the node published, against the generator's labels
    assert 1 <= evidence["frames"] <= 4 and set(evidence["iou"]) == {"background", "car", "person"}
    assert "what fusion added: pedestrians:" in result.stdout


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
    evidence = report["fusion_evidence"]
    assert evidence["frames"] == 2 and [f["frames"] for f in evidence["per_frame"]] == [1, 1]


def test_fusion_evidence_places_the_fused_pedestrians_between_visible_and_thermal() -> None:
    scene = synthetic_frame(2, 96, 128)
    thermal = node_thermal_uint8(scene)
    person = scene.labels == PERSON
    assert person.any()

    def evidence(fused: np.ndarray) -> dict:
        return fusion_evidence([scene], [thermal], [fused], [scene.labels])

    grey_thermal = np.repeat(thermal[:, :, None], 3, axis=2)
    assert evidence(scene.visible)["pedestrian_fusion_ratio"] == 0.0
    assert evidence(grey_thermal)["pedestrian_fusion_ratio"] == 1.0
    halfway = ((scene.visible.astype(float) + grey_thermal) / 2).round().astype(np.uint8)
    assert abs(evidence(halfway)["pedestrian_fusion_ratio"] - 0.5) < 0.02
    perfect = evidence(scene.visible)
    assert perfect["mIoU_background_car_person"] == 1.0  # the labels themselves as the prediction
    wrong = fusion_evidence([scene], [thermal], [scene.visible], [np.zeros_like(scene.labels)])
    assert wrong["iou"]["person"] == 0.0 and wrong["iou"]["car"] == 0.0 and 0 < wrong["iou"]["background"] < 1
