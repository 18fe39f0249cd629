"""Timing the network alone, every backend x precision, the same way for ``psfusion-bench backends`` and
``psfusion-export --self-check``: interleaved rounds, warm-up excluded, accuracy against eager fp32 from the same
run."""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from psfusion_ros.errors import ConfigError, PSFusionError, one_line
from psfusion_ros.harness.synthetic import synthetic_frame, temperature_to_uint8
from psfusion_ros.model.psfusion import PSFusion
from psfusion_ros.pipeline.engines.base import InferenceOutput, agreement

#: backend names of the comparison; ``compile`` is in-process torch.compile, ``compile-aot`` an AOTInductor package;
#: ``-cudagraphs`` replays the same network as one captured CUDA graph (CUDA only)
CUDA_GRAPHS = "-cudagraphs"
BENCH_BACKENDS = ("eager", "compile", "compile-aot", "tensorrt", "onnxruntime",
                  *(f"{b}{CUDA_GRAPHS}" for b in ("eager", "compile", "compile-aot")))


def validation_pair(network_size: tuple[int, int], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """A generated dusk-drive pair at the network size, contiguous NCHW as ``CompiledEngine`` hands it to a graph
    (an AOTInductor package is called with it directly when checked, and assumes the strides it was exported with)."""
    scene = synthetic_frame(3, *network_size, seed=1)
    vi = torch.from_numpy(scene.visible).permute(2, 0, 1)[None].float().div(255).contiguous()
    ir = torch.from_numpy(temperature_to_uint8(scene.temperature))[None, None].float().div(255)
    return vi.to(device), ir.to(device)



def _candidate(backend: str, precision: str, model: PSFusion, device: torch.device, size: tuple[int, int],
               workdir: Path, artifacts: dict) -> Callable[[torch.Tensor, torch.Tensor], InferenceOutput]:
    """A ready-to-time callable for one backend x precision (exports an artifact on the fly when needed)."""
    from psfusion_ros.pipeline.engines import compiled, eager, onnx, tensorrt
    graphs = backend.endswith(CUDA_GRAPHS)
    if graphs and device.type != "cuda":
        raise ConfigError("CUDA graphs need a CUDA device")
    backend = backend.removesuffix(CUDA_GRAPHS)
    if backend == "eager":
        return eager.EagerEngine(model, device, precision, cuda_graphs=graphs)
    if backend == "compile":  # one compile serves compile and compile-cudagraphs
        module = artifacts.get(("compiled module", precision))
        if module is None:
            module = artifacts[("compiled module", precision)] = compiled.compile_in_process(model, device, precision,
                                                                                             size)
        return compiled.CompiledEngine(module, device, precision, model.num_classes, "torch.compile",
                                       cuda_graphs=graphs)
    if backend == "compile-aot":
        path = artifacts.get(("compile", precision)) or workdir / f"bench_{precision}.pt2"
        if not Path(path).exists():
            from psfusion_ros.model.inference import InferenceGraph

            compiled.export_package(InferenceGraph(model, precision).to(device).eval(),
                                    validation_pair(size, device), path)
        return compiled.CompiledEngine(compiled.load_package(path), device, precision, model.num_classes, str(path),
                                       cuda_graphs=graphs)
    if backend == "tensorrt":
        path = artifacts.get(("tensorrt", precision)) or workdir / f"bench_{precision}.ep"
        if not Path(path).exists():
            tensorrt.export_program(model, precision, size, device, path)
        return tensorrt.TensorRTEngine(tensorrt.load_program(path), device, precision, model.num_classes,
                                       cudagraphs=True, runtime=tensorrt.import_torch_tensorrt().runtime)
    if backend == "onnxruntime":
        if precision != "fp32":
            raise ConfigError("onnxruntime runs the fp32 ONNX export")
        path = artifacts.get(("onnx", "fp32")) or workdir / "bench.onnx"
        if not Path(path).exists():
            from psfusion_ros.model.inference import InferenceGraph

            onnx.export_onnx(InferenceGraph(model, "fp32").to(device).eval(), validation_pair(size, device), path)
        return onnx.OnnxRuntimeEngine(path, device, model.num_classes)
    raise ConfigError(f"unknown backend {backend!r}; expected one of {BENCH_BACKENDS}")


def _rss_high_water_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _time_candidates(model: PSFusion, device: torch.device, size: tuple[int, int], candidates: list[tuple[str, str]],
                     iterations: int, warmup: int, artifacts: dict, workdir: Path, vi: torch.Tensor,
                     ir: torch.Tensor) -> dict[tuple[str, str], dict[str, Any]]:
    """Set up every candidate (warm-up included), then time them in interleaved rounds: rows with raw times."""
    ready: dict[tuple[str, str], Callable] = {}
    rows: dict[tuple[str, str], dict[str, Any]] = {}

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for backend, precision in candidates:
        row = rows[(backend, precision)] = {"backend": backend, "precision": precision}
        started = time.perf_counter()
        try:
            run = _candidate(backend, precision, model, device, size, workdir, artifacts)
            for _ in range(warmup):
                output = run(vi, ir)
            sync()
        except PSFusionError as exc:
            row["error"] = str(exc)
            continue
        except Exception as exc:  # noqa: BLE001 - a backend that does not work here is reported, not fatal
            row["error"] = f"{type(exc).__name__}: {one_line(exc)[:160]}"
            continue
        row["setup_s"] = round(time.perf_counter() - started, 1)
        row["output"] = output
        row["times"] = []
        ready[(backend, precision)] = run
        print(f"psfusion-bench: {backend} {precision} ready in {row['setup_s']} s", file=sys.stderr, flush=True)
    for _ in range(iterations):  # interleaved: every candidate once per round
        for key, run in ready.items():
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            sync()
            t0 = time.perf_counter()
            run(vi, ir)
            sync()
            rows[key]["times"].append((time.perf_counter() - t0) * 1e3)
            if device.type == "cuda":
                rows[key]["peak_memory_mb"] = max(rows[key].get("peak_memory_mb", 0.0),
                                                  torch.cuda.max_memory_allocated(device) / 2**20)
    return rows


def run_backends(model: PSFusion, device: torch.device, size: tuple[int, int], candidates: list[tuple[str, str]],
                 iterations: int = 5, warmup: int = 1, artifacts: dict | None = None) -> dict[str, Any]:
    """Time each (backend, precision) in interleaved rounds; eager fp32 is always included as the reference."""
    candidates = [("eager", "fp32")] + [c for c in candidates if c != ("eager", "fp32")]
    vi, ir = validation_pair(size, device)
    artifacts = dict(artifacts or {})
    with tempfile.TemporaryDirectory(prefix="psfusion-bench-") as tmp:  # packages exported on the fly (~100 MB)
        rows = _time_candidates(model, device, size, candidates, iterations, warmup, artifacts, Path(tmp), vi, ir)
    reference = rows[("eager", "fp32")].get("output")
    base = float(np.median(rows[("eager", "fp32")]["times"])) if "times" in rows[("eager", "fp32")] else float("nan")
    results = []
    for row in rows.values():
        if "times" in row:
            t = np.asarray(row.pop("times"))
            median = float(np.median(t))
            row.update({"median_ms": round(median, 2), "p95_ms": round(float(np.percentile(t, 95)), 2),
                        "min_ms": round(float(t.min()), 2), "spread_pct": round(100 * (t.max() - t.min()) / median, 1),
                        "iterations": len(t), "pairs_per_s": round(1000 / median, 3),
                        "speedup_vs_eager_fp32": round(base / median, 3)})
            output = row.pop("output")
            if reference is not None:
                row.update(agreement(reference, output))
        results.append(row)
    report = {"benchmark": "backends", "machine": _machine(device), "network_size": list(size),
              "iterations": iterations, "warmup": warmup, "interleaved": True, "results": results,
              "process_rss_high_water_mb": round(_rss_high_water_mb(), 1)}
    return report


def _machine(device: torch.device) -> dict[str, Any]:
    import os
    import platform

    info = {"device": str(device), "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability()}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def print_backends(report: dict[str, Any]) -> None:
    m = report["machine"]
    print(f"network {report['network_size'][0]}x{report['network_size'][1]} on {m['device']} ({m.get('gpu', m['cpu'])}"
          f", {m['cpu_capability']}, torch {m['torch']}), {report['iterations']} interleaved rounds")
    print(f"{'backend':12s} {'prec':5s} {'median ms':>10s} {'p95 ms':>9s} {'min ms':>9s} {'spread':>7s} "
          f"{'pairs/s':>8s} {'vs eager fp32':>13s} {'PSNR dB':>8s} {'mask':>7s}")
    for r in report["results"]:
        if "error" in r:
            print(f"{r['backend']:12s} {r['precision']:5s} not available: {r['error']}")
            continue
        print(f"{r['backend']:12s} {r['precision']:5s} {r['median_ms']:10.1f} {r['p95_ms']:9.1f} {r['min_ms']:9.1f} "
              f"{r['spread_pct']:6.0f}% {r['pairs_per_s']:8.2f} {r['speedup_vs_eager_fp32']:12.2f}x "
              f"{r.get('fused_psnr_db', float('nan')):8.1f} {r.get('mask_agreement', float('nan')) * 100:6.2f}%")


