"""``psfusion-bench registration`` on tiny generated aligned pairs: both families, baselines, the joint test."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from psfusion_ros.harness.synthetic import synthetic_frame, temperature_to_uint8
from psfusion_ros.io.image_files import write_image

BENCH = str(Path(sys.executable).parent / "psfusion-bench")


def test_bench_scores_the_estimator_and_a_baseline_on_both_families(tmp_path: Path) -> None:
    for k in range(2):
        frame = synthetic_frame(4 * k, 192, 256, seed=3)
        write_image(tmp_path / "pairs" / "ir" / f"{k}.png", temperature_to_uint8(frame.temperature))
        write_image(tmp_path / "pairs" / "vi" / f"{k}.png", frame.visible)
    out = tmp_path / "registration.json"
    result = subprocess.run([BENCH, "registration", "--ir", str(tmp_path / "pairs" / "ir"), "--vi",
                             str(tmp_path / "pairs" / "vi"), "--size", "native", "--cases-per-pair", "1",
                             "--joint", "2", "--methods", "psfusion_ros,sift-ransac", "--json", str(out)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert report["pairs"] == 2 and len(report["cases"]) == 4
    ours = report["summary"]["control"]["psfusion_ros"]
    assert ours["cases"] == 2 and ours["median_px"] < 2.0 and ours["within_5px"] == 1.0
    assert "sift-ransac" in report["summary"]["real"] and report["summary"]["real"]["psfusion_ros"]["cases"] == 2
    assert report["joint"]["pairs"] == 2 and report["joint"]["control"]["error_px"] < 2.5
    assert "control  psfusion_ros" in result.stdout and "confident only" in result.stdout
    bad = subprocess.run([BENCH, "registration", "--ir", str(tmp_path / "pairs" / "ir"), "--vi",
                          str(tmp_path / "pairs" / "vi"), "--methods", "elastix"], capture_output=True, text=True,
                         timeout=120)
    assert bad.returncode == 2 and "unknown method 'elastix'" in bad.stderr
