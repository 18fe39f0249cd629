"""``psfusion-export`` and ``psfusion-bench`` as users run them (small sizes; timings are reported, never asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent


def _run(tool: str, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / tool), *args], capture_output=True, text=True, timeout=timeout)


def test_an_artifact_below_the_accuracy_threshold_is_not_written_unless_forced(
        tmp_path: Path, official_checkpoint: Path, onnx_artifact: dict) -> None:
    out = tmp_path / "psfusion.onnx"
    refused = _run("psfusion-export", "--checkpoint", str(official_checkpoint), "--backend", "onnx", "--network-size",
                   "64x96", "--device", "cpu", "-o", str(out), "--min-psnr", "1000")
    assert refused.returncode == 2, refused.stderr
    assert "not written (--force keeps it)" in refused.stderr.strip().splitlines()[-1]
    assert not out.exists() and not list(tmp_path.glob(".partial-*"))
    # the same threshold with --force: the session's ONNX export (conftest), kept and marked as forced
    forced = onnx_artifact["path"]
    assert forced.exists() and "wrote" in onnx_artifact["stdout"], onnx_artifact["stderr"]
    meta = json.loads(Path(str(forced) + ".json").read_text())
    assert meta["accuracy"]["forced"] is True and meta["onnx"] == {"opset": 18, "inputs": ["vi", "ir"],
                                                                    "outputs": ["fused", "semantic"]}
    assert meta["accuracy"]["fused_psnr_db"] >= 60 and len(meta["checkpoint_sha256"]) == 64
    assert not list(forced.parent.glob(".partial-*"))


def test_export_usage_errors_are_one_line(tmp_path: Path, official_checkpoint: Path) -> None:
    cases = [(["--backend", "compile", "-o", str(tmp_path / "x.onnx")], "a compile artifact is named *.pt2"),
             (["--backend", "tensorrt", "--device", "cpu", "-o", str(tmp_path / "x.ep")],
              "--backend tensorrt builds on the target GPU"),
             (["--backend", "onnx", "--precision", "bf16", "-o", str(tmp_path / "x.onnx")], "ONNX export is fp32")]
    for args, message in cases:
        result = _run("psfusion-export", "--checkpoint", str(official_checkpoint), "--network-size", "64x96", *args)
        assert result.returncode == 2 and message in result.stderr.strip().splitlines()[-1], result.stderr
        assert "Traceback" not in result.stderr


def test_self_check_on_a_machine_without_gpu(tmp_path: Path) -> None:
    report_path = tmp_path / "gpu_check.json"
    result = _run("psfusion-export", "--self-check", "--allow-untrained", "--network-size", "64x96",
                  "--iterations", "2", "--json", str(report_path))
    assert result.returncode == 0, result.stderr
    report = json.loads(report_path.read_text())
    assert report["versions"]["torch"].startswith("2.") and "cpu_capability" in report["versions"]
    checks = {c["check"]: c for c in report["checks"]}
    onnx_check = checks["export onnx fp32 128x160"]
    assert onnx_check["ok"] is True and onnx_check["fused_psnr_db"] >= 60
    assert checks["TensorRT"]["ok"] is None and "no CUDA GPU" in checks["TensorRT"]["error"]
    rows = {(r["backend"], r["precision"]): r for r in report["bench"]["results"]}
    assert rows[("eager", "fp32")]["speedup_vs_eager_fp32"] == 1.0 and ("onnxruntime", "fp32") in rows
    assert "export onnx fp32 128x160" in result.stdout and "vs eager fp32" in result.stdout


def test_bench_backends_reports_ratios_and_accuracy_from_one_run(tmp_path: Path) -> None:
    out = tmp_path / "backends.json"
    result = _run("psfusion-bench", "backends", "--device", "cpu", "--network-size", "64x96", "--backends", "eager",
                  "--precisions", "fp32,bf16", "--iterations", "3", "--json", str(out))
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert report["interleaved"] and report["machine"]["device"] == "cpu" and report["network_size"] == [64, 96]
    rows = {(r["backend"], r["precision"]): r for r in report["results"]}
    assert set(rows) == {("eager", "fp32"), ("eager", "bf16")}
    for row in rows.values():
        assert row["iterations"] == 3 and row["min_ms"] <= row["median_ms"] <= row["p95_ms"]
        assert row["pairs_per_s"] > 0 and row["speedup_vs_eager_fp32"] > 0
    assert rows[("eager", "fp32")]["fused_psnr_db"] == 200.0 and rows[("eager", "fp32")]["mask_agreement"] == 1.0
    assert rows[("eager", "bf16")]["fused_psnr_db"] < 200.0
    assert "vs eager fp32" in result.stdout


def test_bench_pipeline_with_an_exported_artifact(tmp_path: Path, aoti_artifact: Path,
                                                  official_checkpoint: Path) -> None:
    out = tmp_path / "pipeline.json"
    result = _run("psfusion-bench", "pipeline", "--backend", "compile", "--engine-path", str(aoti_artifact),
                  "--size", "96x128", "--thermal-size", "72x96", "--network-size", "64x96", "--iterations", "3",
                  "--warmup", "1", "--json", str(out))
    # the artifact was built from the session checkpoint, the bench runs untrained weights: refused, one line
    assert result.returncode == 2 and "other weights" in result.stderr, result.stderr
    result = _run("psfusion-bench", "pipeline", "--backend", "compile", "--engine-path", str(aoti_artifact),
                  "--checkpoint", str(official_checkpoint), "--size", "96x128", "--thermal-size", "72x96",
                  "--network-size", "64x96", "--iterations", "3", "--warmup", "1", "--json", str(out))
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert report["benchmark"] == "pipeline" and report["backend"] == "compile" and report["data_path"] == "arrays"
    for stage in ("decode", "sync", "thermal", "register", "resize_in", "inference", "colour", "argmax", "encode",
                  "publish", "total"):
        assert report["stages_ms"][stage]["p50"] >= 0, stage
