"""``psfusion-bench precision`` as users run it, on the real network at 32x64 (timings reported, never asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from psfusion_ros.model.precision import blocks
from psfusion_ros.model.psfusion import PSFusion

BIN = Path(sys.executable).parent


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "psfusion-bench"), "precision", *args], capture_output=True, text=True,
                          timeout=900)


def test_the_study_measures_every_block_and_grows_the_fp32_set_until_the_target(tmp_path: Path) -> None:
    """With a target only fp32 itself reaches (200 dB = identical), the greedy set must grow until the network's
    output equals fp32, and the table must say so."""
    out = tmp_path / "precision.json"
    result = _run("--network-size", "32x64", "--weights", "seed:3", "--target-psnr", "200", "--target-agreement",
                  "1", "--json", str(out))
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    row = report["weight_sets"]["seed:3"]
    assert set(row["blocks"]) == set(blocks(PSFusion())) and row["all_low"]["fused_psnr_db"] < 200
    assert all(ms["fp32"] >= 0 and ms["bf16"] >= 0 for ms in row["block_ms"].values())
    assert report["met"] is True and report["greedy"][-1]["scores"]["seed:3"]["fused_psnr_db"] == 200.0
    chosen = report["fp32_blocks"]
    assert chosen == report["greedy"][-1]["fp32_blocks"] and len(chosen) == len(report["greedy"])
    # each step's set extends the previous one
    assert all(a["fp32_blocks"] == b["fp32_blocks"][:-1] for a, b in zip(report["greedy"], report["greedy"][1:]))
    assert "smallest greedy fp32 set" in result.stdout and "meets 200.0 dB" in result.stdout


def test_a_bad_weight_set_is_one_line(tmp_path: Path) -> None:
    for spec, message in (("seed:x", "expected seed:<integer> or a checkpoint path"),
                          (str(tmp_path / "missing.pth"), "no such checkpoint")):
        result = _run("--network-size", "32x64", "--weights", spec)
        assert result.returncode == 2 and message in result.stderr.strip().splitlines()[-1], result.stderr
        assert "Traceback" not in result.stderr


def test_when_single_blocks_suffice_the_cheapest_is_kept(tmp_path: Path) -> None:
    """A target that several single blocks reach: the study keeps the one whose fp32 run costs least (by its own
    timings), not the one with the largest gain."""
    first = tmp_path / "first.json"
    assert _run("--network-size", "32x64", "--weights", "seed:3", "--json", str(first)).returncode == 0
    row = json.loads(first.read_text())["weight_sets"]["seed:3"]
    low = row["all_low"]["fused_psnr_db"]
    gains = sorted(s["fused_psnr_db"] for s in row["blocks"].values() if s["fused_psnr_db"] > low)
    assert len(gains) >= 2  # several blocks help at all
    target = (low + gains[-2]) / 2  # reached by at least two single blocks
    out = tmp_path / "second.json"
    result = _run("--network-size", "32x64", "--weights", "seed:3", "--target-psnr", f"{target:.6f}",
                  "--target-agreement", "0", "--json", str(out))
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    row = report["weight_sets"]["seed:3"]
    sufficient = [b for b, s in row["blocks"].items() if s["fused_psnr_db"] >= target]
    assert len(sufficient) >= 2
    cost = {b: row["block_ms"][b]["fp32"] - row["block_ms"][b]["bf16"] for b in sufficient}
    assert report["fp32_blocks"] == [min(sufficient, key=cost.get)] and report["met"] is True
