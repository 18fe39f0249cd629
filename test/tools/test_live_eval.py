"""``psfusion-eval --live``: the bag through the real node; every input pair accounted for, outputs recorded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import SHARED_PAIRS
from psfusion_ros.harness.synthetic import synthetic_frame, temperature_to_uint8
from psfusion_ros.io.bags import BagReader
from psfusion_ros.io.image_files import write_image

BIN = Path(sys.executable).parent


def _run(tool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / tool), *args], capture_output=True, text=True, timeout=900)


def _check_live_report(out: Path, pairs: int) -> dict:
    report = json.loads((out / "report.json").read_text())
    assert report["pairs"] == pairs and report["output_bag"].endswith("offline_bag")
    live = report["live"]
    for run in live["runs"]:
        assert run["total"] == pairs and run["accounted"], run
        assert run["published"] + sum(run["dropped"].values()) == pairs
        assert run["node"]["exit_code"] == 0 and run["node"]["rss_mb"]["max"] > 0
    first = live["runs"][0]
    assert first["published"] >= 1 and first["latency_ms"]["publish_to_receipt"]["p50"] >= 0
    assert first["latency_ms"]["stamp_to_receipt"]["p50"] > 0 and set(first["metrics"]) >= {"EN", "SSIM"}
    with BagReader(out / "bag") as reader:  # what the node published, readable with rosbags
        topics = reader.topics()
    assert topics["/psfusion/fused/image"][1] == first["published"]
    assert "the vehicle would have lost" in live["vs_offline"]["summary"]
    assert "Live: the bag through the real node" in (out / "report.html").read_text()
    return report


def test_live_evaluation_of_a_generated_drive(tmp_path: Path) -> None:
    data = tmp_path / "drive"
    for k in range(8):
        scene = synthetic_frame(k, 96, 128, seed=2)
        write_image(data / "vi" / f"{k:03d}.png", scene.visible)
        write_image(data / "ir" / f"{k:03d}.png", temperature_to_uint8(scene.temperature))
    made = _run("psfusion-bag", "--ir", str(data / "ir"), "--vi", str(data / "vi"), "--out", str(tmp_path / "bag"),
                "--rate", "4", "--thermal-encoding", "mono16")
    assert made.returncode == 0, made.stderr
    out = tmp_path / "eval"
    result = _run("psfusion-eval", "--bag", str(tmp_path / "bag"), "--out", str(out), "--allow-untrained",
                  "--network-size", "64x96", "--device", "cpu", "--live", "--rate-sweep", "4")
    assert result.returncode == 0, result.stderr
    report = _check_live_report(out, 8)
    assert [r["rate_factor"] for r in report["live"]["runs"]] == [1.0, 4.0]


@pytest.mark.skipif(not SHARED_PAIRS.is_dir(), reason="../shared sample pairs not present")
def test_live_evaluation_of_the_roadscene_pairs(tmp_path: Path) -> None:
    bag = tmp_path / "roadscene"
    made = _run("psfusion-bag", "--ir", str(SHARED_PAIRS / "roadscene" / "ir"), "--vi",
                str(SHARED_PAIRS / "roadscene" / "vi"), "--out", str(bag), "--rate", "2", "--jitter-ms", "3",
                "--thermal-encoding", "mono16")
    assert made.returncode == 0, made.stderr
    out = tmp_path / "eval"
    result = _run("psfusion-eval", "--bag", str(bag), "--out", str(out), "--allow-untrained", "--network-size",
                  "128x160", "--device", "cpu", "--live")
    assert result.returncode == 0, result.stderr
    _check_live_report(out, 10)
