"""``psfusion-export``: build a deployment artifact once on the target machine, check it, describe it.

* ``--backend compile``: an AOTInductor package (``.pt2``, weights inside) that the node loads with
  ``backend: compile`` in about a second, on CPU or CUDA;
* ``--backend tensorrt``: a Torch-TensorRT program (``.ep``) for ``backend: tensorrt`` on this GPU;
* ``--backend onnx``: an ONNX file (opset 18, outputs ``fused`` and ``semantic``) for trtexec, Isaac ROS's TensorRT
  node or ONNX Runtime; checked here in ONNX Runtime.

Every artifact is run on a generated pair and compared with eager fp32 before it is kept (fused PSNR, mask
agreement); below the thresholds it is not written unless ``--force``. ``ARTIFACT.json`` records what it was built
for. ``--self-check`` is the one command for a new GPU machine, sized for a short lease: versions, one AOTInductor
and one TensorRT fp16 build at the configured size (built in child processes, loaded here), eager/CUDA-graph/package/
TensorRT timings and accuracy (``psfusion-bench backends``), the node's per-stage figures, as one JSON and a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from psfusion_ros.cli import existing_file, network_size_arg, run_cli
from psfusion_ros.errors import ConfigError, EngineError, PSFusionError, one_line
from psfusion_ros.io.json_files import write_json
from psfusion_ros.model.inference import InferenceGraph
from psfusion_ros.model.precision import POLICIES
from psfusion_ros.model.psfusion import PSFusion
from psfusion_ros.pipeline.builder import load_model
from psfusion_ros.pipeline.config import PipelineConfig
from psfusion_ros.pipeline.engines import tensorrt
from psfusion_ros.pipeline.engines.artifact import checkpoint_sha256, environment, read_sidecar, write_sidecar
from psfusion_ros.pipeline.engines.base import InferenceOutput, agreement, check_precision, resolve_device
from psfusion_ros.pipeline.parameters import DEVICES, PRECISIONS, default_params_file
from psfusion_ros.tools.backend_timing import CUDA_GRAPHS, print_backends, run_backends, validation_pair

EXPORT_BACKENDS = ("compile", "tensorrt", "onnx")
SUFFIXES = {"compile": ".pt2", "tensorrt": ".ep", "onnx": ".onnx"}
#: Accuracy an artifact must reach against eager fp32 on the generated pair to be written (without --force).
MIN_PSNR_DB, MIN_MASK_AGREEMENT = 35.0, 0.98
SELF_CHECK_SMALL = (128, 160)
SELF_CHECK_EXPORT_TIMEOUT_S = 300  # a build that takes longer would not fit a 15-minute GPU lease


def say(text: str) -> None:
    print(f"psfusion-export: {text}", file=sys.stderr, flush=True)


def _load_artifact(backend: str, path: Path, device: torch.device, num_classes: int):
    from psfusion_ros.pipeline.engines import compiled, onnx, tensorrt

    if backend == "compile":
        module = compiled.load_package(path)
    elif backend == "tensorrt":
        module = tensorrt.load_program(path)
    else:
        engine = onnx.OnnxRuntimeEngine(path, device, num_classes)
        return lambda vi, ir: engine(vi, ir)

    def run(vi: torch.Tensor, ir: torch.Tensor) -> InferenceOutput:
        with torch.inference_mode():
            fused, semantic = module(vi, ir)
        return InferenceOutput(fused.float(), semantic.float())

    return run


def export_artifact(model: PSFusion, backend: str, precision: str, network_size: tuple[int, int],
                    device: torch.device, out: Path, checkpoint: str | None = None, hardware_compatible: bool = False,
                    version_compatible: bool = False, force: bool = False, min_psnr: float = MIN_PSNR_DB,
                    min_agreement: float = MIN_MASK_AGREEMENT) -> dict[str, Any]:
    """Build, check against eager fp32, keep (or refuse), describe. Returns the sidecar's content."""
    from psfusion_ros.pipeline.engines import compiled, onnx, tensorrt

    if backend == "onnx" and precision != "fp32":
        raise ConfigError("ONNX export is fp32: let the consumer choose its precision (e.g. trtexec --fp16)")
    if backend == "tensorrt" and device.type != "cuda":
        raise ConfigError("--backend tensorrt builds on the target GPU: run it on a CUDA machine (--device cuda)")
    check_precision(precision, device)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".partial-{out.stem}{SUFFIXES[backend]}")
    inputs = validation_pair(network_size, device)
    with torch.inference_mode():
        reference = InferenceOutput(*InferenceGraph(model, "fp32").to(device).eval()(*inputs))
    started = time.perf_counter()
    say(f"building {backend} {precision} at {network_size[0]}x{network_size[1]} on {device} "
        "(compilation takes about a minute or more on a CPU) ...")
    try:
        if backend == "compile":
            compiled.export_package(InferenceGraph(model, precision).to(device).eval(), inputs, partial)
        elif backend == "onnx":
            onnx.export_onnx(InferenceGraph(model, "fp32").to(device).eval(), inputs, partial)
        else:
            tensorrt.export_program(model, precision, network_size, device, partial, hardware_compatible,
                                    version_compatible)
        build_s = time.perf_counter() - started
        say(f"built in {build_s:.1f} s; checking it against eager fp32 on a generated pair ...")
        accuracy = agreement(reference, _load_artifact(backend, partial, device, model.num_classes)(*inputs))
    except PSFusionError:
        partial.unlink(missing_ok=True)
        raise
    except Exception as exc:  # noqa: BLE001 - compiler/exporter failures: one line, no half-written artifact
        partial.unlink(missing_ok=True)
        raise EngineError(f"{backend} export failed: {type(exc).__name__}: {one_line(exc)[:200]}") from None
    good = accuracy["fused_psnr_db"] >= min_psnr and accuracy["mask_agreement"] >= min_agreement
    if not good and not force:
        partial.unlink(missing_ok=True)
        raise EngineError(f"the {backend} {precision} artifact reaches fused PSNR {accuracy['fused_psnr_db']} dB and "
                          f"mask agreement {accuracy['mask_agreement']:.4f} against eager fp32 (needs {min_psnr} dB, "
                          f"{min_agreement}); not written (--force keeps it)")
    partial.replace(out)
    meta = {
        "backend": backend, "precision": precision, "network_size": list(network_size),
        "precision_policy": POLICIES["fp32" if backend == "onnx" else precision].describe(),
        "input_layout": "contiguous",  # an AOTInductor package assumes the strides it was exported with
        "num_classes": model.num_classes, "checkpoint": checkpoint, "checkpoint_sha256": checkpoint_sha256(checkpoint),
        "environment": environment(device), "hardware_compatible": hardware_compatible,
        "version_compatible": version_compatible, "accuracy": {**accuracy, "reference": "eager fp32, generated pair",
                                                               "forced": not good},
        "build_seconds": round(build_s, 1), "size_bytes": out.stat().st_size,
    }
    if backend == "onnx":
        meta["onnx"] = {"opset": onnx.OPSET, "inputs": list(onnx.INPUT_NAMES), "outputs": list(onnx.OUTPUT_NAMES)}
    write_sidecar(out, meta)
    return meta


# -- the GPU self-check ---------------------------------------------------------------------------------------
def _versions(device: torch.device) -> dict[str, Any]:
    info = {"python": platform.python_version(), "platform": platform.platform(), **environment(device),
            "cudnn": torch.backends.cudnn.version() if torch.cuda.is_available() else None}
    if shutil.which("nvidia-smi"):
        try:
            info["driver"] = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                            capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    return info


def _child_export(backend: str, precision: str, size: tuple[int, int], path: Path,
                  args: argparse.Namespace) -> dict[str, Any]:
    """``psfusion-export`` in a child process: the node loads packages in a process that did not compile them (torch
    2.11 crashed loading a CUDA package in the compiling process), and a compiler crash is a failed check."""
    weights = ["--checkpoint", args.checkpoint] if args.checkpoint else ["--allow-untrained"]
    params = ["--params-file", args.params_file] if args.params_file else []
    command = [sys.executable, "-m", "psfusion_ros.tools.export", "--backend", backend, "--precision", precision,
               "--network-size", f"{size[0]}x{size[1]}", "--device", "cuda", "-o", str(path), "--force",
               *weights, *params]
    check: dict[str, Any] = {"check": f"export {backend} {precision} {size[0]}x{size[1]}"}
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=SELF_CHECK_EXPORT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return {**check, "ok": False, "error": f"not built within {SELF_CHECK_EXPORT_TIMEOUT_S} s"}
    if result.returncode != 0 or not path.exists():
        lines = (result.stderr or result.stdout).strip().splitlines() or [f"exit code {result.returncode}"]
        return {**check, "ok": False, "error": lines[-1][:300]}
    meta = read_sidecar(path)
    return {**check, "ok": not meta["accuracy"]["forced"], **{k: meta["accuracy"][k] for k in (
        "fused_psnr_db", "mask_agreement")}, "build_seconds": meta["build_seconds"]}


def _node_pipeline(args: argparse.Namespace, size: tuple[int, int], workdir: Path) -> dict[str, Any]:
    """``psfusion-bench pipeline`` on CUDA (eager fp16, CUDA graphs on as the node runs it): per-stage figures."""
    out = workdir / "pipeline.json"
    command = [sys.executable, "-m", "psfusion_ros.tools.bench", "pipeline", "--device", "cuda", "--backend", "eager",
               "--precision", "fp16", "--network-size", f"{size[0]}x{size[1]}", "--iterations", "30",
               "--json", str(out)]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=SELF_CHECK_EXPORT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return {"error": f"psfusion-bench pipeline did not finish within {SELF_CHECK_EXPORT_TIMEOUT_S} s"}
    if result.returncode != 0 or not out.exists():
        return {"error": ((result.stderr or result.stdout).strip().splitlines() or ["failed"])[-1][:300]}
    return json.loads(out.read_text())


def self_check(args: argparse.Namespace) -> int:
    """Everything a bug report about a GPU machine needs, exercised for real, in one JSON and one table; on a GPU it
    fits a short lease: one AOTInductor and one TensorRT build (fp16, the configured size), no compile per size."""
    started = time.perf_counter()
    config = PipelineConfig.from_yaml(args.params_file or default_params_file())
    size = args.network_size or config.network_size or (480, 640)
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    model = load_model(config.replace(allow_untrained=True), args.checkpoint)
    report: dict[str, Any] = {"versions": _versions(device), "network_size": list(size), "checks": [],
                              "seconds": {}}
    workdir = Path(tempfile.mkdtemp(prefix="psfusion-self-check-"))
    artifacts: dict[tuple[str, str], Path] = {}

    def lap(step: str, since: float) -> None:
        report["seconds"][step] = round(time.perf_counter() - since, 1)

    if cuda:
        builds = [("compile", "fp16")]
        try:
            tensorrt.import_torch_tensorrt()
            builds.append(("tensorrt", "fp16"))
        except EngineError as exc:
            report["checks"].append({"check": "TensorRT", "ok": None, "error": f"skipped: {exc}"})
        for backend, precision in builds:
            t0 = time.perf_counter()
            path = workdir / f"psfusion_{precision}_{size[0]}x{size[1]}{SUFFIXES[backend]}"
            check = _child_export(backend, precision, size, path, args)
            report["checks"].append(check)
            if path.exists():
                artifacts[(backend, precision)] = path
            lap(f"export {backend} {precision}", t0)
        candidates = [(b, p) for b in ("eager", f"eager{CUDA_GRAPHS}") for p in ("fp32", "fp16", "bf16")]
        if ("compile", "fp16") in artifacts:  # loaded here, in a process that did not compile it
            candidates += [("compile-aot", "fp16"), (f"compile-aot{CUDA_GRAPHS}", "fp16")]
        if ("tensorrt", "fp16") in artifacts:
            candidates.append(("tensorrt", "fp16"))
        bench_size = size
    else:  # the ONNX path only (an AOTInductor export takes minutes on a CPU; psfusion-bench backends measures it)
        t0 = time.perf_counter()
        path = workdir / f"psfusion_fp32_{SELF_CHECK_SMALL[0]}x{SELF_CHECK_SMALL[1]}.onnx"
        name = f"export onnx fp32 {SELF_CHECK_SMALL[0]}x{SELF_CHECK_SMALL[1]}"
        try:
            meta = export_artifact(model, "onnx", "fp32", SELF_CHECK_SMALL, device, path, args.checkpoint, force=True)
            report["checks"].append({"check": name, "ok": not meta["accuracy"]["forced"], **meta["accuracy"],
                                     "build_seconds": meta["build_seconds"]})
            artifacts[("onnx", "fp32")] = path
        except PSFusionError as exc:
            report["checks"].append({"check": name, "ok": False, "error": str(exc)})
        report["checks"].append({"check": "TensorRT", "ok": None, "error": "skipped: no CUDA GPU on this machine"})
        lap("export onnx fp32", t0)
        candidates = [("eager", "fp32"), ("eager", "bf16"), ("onnxruntime", "fp32")]
        bench_size = SELF_CHECK_SMALL
    t0 = time.perf_counter()
    try:
        report["bench"] = run_backends(model, device, bench_size, candidates, iterations=args.iterations, warmup=2,
                                       artifacts=artifacts)
    except PSFusionError as exc:
        report["bench"] = {"error": str(exc)}
    lap("backends", t0)
    if cuda:
        t0 = time.perf_counter()
        report["pipeline"] = _node_pipeline(args, size, workdir)
        lap("node pipeline", t0)
    shutil.rmtree(workdir, ignore_errors=True)
    report["seconds"]["total"] = round(time.perf_counter() - started, 1)
    _print_self_check(report)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        write_json(args.json, report)
        say(f"report -> {args.json}")
    failed = [c for c in report["checks"] if c["ok"] is False]
    return 1 if failed else 0


def _print_self_check(report: dict[str, Any]) -> None:
    v = report["versions"]
    print(f"torch {v['torch']}  CUDA {v.get('cuda')}  cuDNN {v.get('cudnn')}  "
          f"torch_tensorrt {v.get('torch_tensorrt')}  TensorRT {v.get('tensorrt')}  "
          f"GPU {v.get('gpu', 'none')} {v.get('compute_capability', '')}  CPU {v['cpu_capability']}")
    print(f"{'check':36s} {'ok':5s} {'PSNR dB':>8s} {'mask agr.':>9s}  note")
    for c in report["checks"]:
        ok = {True: "yes", False: "NO", None: "-"}[c["ok"]]
        print(f"{c['check']:36s} {ok:5s} {c.get('fused_psnr_db', ''):>8} {c.get('mask_agreement', ''):>9}  "
              f"{c.get('error', '')}")
    bench = report.get("bench", {})
    if "results" in bench:
        print_backends(bench)
    pipeline = report.get("pipeline")
    if pipeline and "stages_ms" in pipeline:
        stages = pipeline["stages_ms"]
        print(f"node pipeline ({pipeline['backend']} {pipeline['precision']}, {pipeline['data_path']} data path): "
              f"per pair p50 {stages['total']['p50']:.1f} ms, p95 {stages['total']['p95']:.1f} ms")
    elif pipeline:
        print(f"node pipeline: {pipeline.get('error')}")
    print("seconds: " + ", ".join(f"{k} {v}" for k, v in report["seconds"].items()))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="psfusion-export", description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="best_model.pth or a psfusion_ros checkpoint (default: the parameter "
                        "file's checkpoint)")
    parser.add_argument("--allow-untrained", action="store_true", help="export seeded untrained weights (tests)")
    parser.add_argument("--params-file", type=existing_file, help="node parameter file (network size, checkpoint)")
    parser.add_argument("--backend", choices=EXPORT_BACKENDS)
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32",
                        help="fp16 for TensorRT on a GPU, bf16 for compile on CPUs with AVX-512 BF16/AMX")
    parser.add_argument("--network-size", type=network_size_arg, metavar="HxW",
                        help="fixed network input size (default: the parameter file's, 480x640)")
    parser.add_argument("--device", choices=DEVICES, default="auto")
    parser.add_argument("-o", "--output", help="artifact to write (its sidecar: OUTPUT.json)")
    parser.add_argument("--hardware-compatible", action="store_true",
                        help="TensorRT: run on other GPUs of compute capability 8.0+ (Ampere and newer)")
    parser.add_argument("--version-compatible", action="store_true", help="TensorRT: run on newer TensorRT releases")
    parser.add_argument("--force", action="store_true", help="write the artifact even below the accuracy thresholds")
    parser.add_argument("--min-psnr", type=float, default=MIN_PSNR_DB, help="fused PSNR (dB) against eager fp32")
    parser.add_argument("--min-mask-agreement", type=float, default=MIN_MASK_AGREEMENT)
    parser.add_argument("--self-check", action="store_true", help="versions, exports, accuracy and timings of "
                        "this machine in one report (for GPU machines; on a CPU it checks the ONNX path)")
    parser.add_argument("--iterations", type=int, default=10, help="self-check: timed rounds per backend")
    parser.add_argument("--json", help="self-check: write the report here")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.self_check and (not args.backend or not args.output):
        parser.error("--backend and -o/--output are required (or --self-check)")

    def run() -> int:
        if args.self_check:
            return self_check(args)
        config = PipelineConfig.from_yaml(args.params_file or default_params_file())
        if args.checkpoint:
            config = config.with_params({"checkpoint": args.checkpoint})
        if args.allow_untrained:
            config = config.replace(allow_untrained=True)
        size = args.network_size or config.network_size
        if size is None:
            raise ConfigError("--network-size HxW is required: exported artifacts have a fixed input size")
        out = Path(args.output)
        if out.suffix != SUFFIXES[args.backend]:
            raise ConfigError(f"a {args.backend} artifact is named *{SUFFIXES[args.backend]} (got {out.name})")
        device = resolve_device(args.device)
        model = load_model(config)
        meta = export_artifact(model, args.backend, args.precision, size, device, out, config.checkpoint or None,
                               args.hardware_compatible, args.version_compatible, args.force, args.min_psnr,
                               args.min_mask_agreement)
        acc = meta["accuracy"]
        print(f"psfusion-export: wrote {out} ({args.backend} {args.precision}, {size[0]}x{size[1]} on {device.type}, "
              f"{meta['size_bytes'] / 1e6:.1f} MB, built in {meta['build_seconds']} s): fused PSNR "
              f"{acc['fused_psnr_db']} dB, mask agreement {acc['mask_agreement'] * 100:.2f} % against eager fp32; "
              f"sidecar {out}.json")
        if args.backend != "onnx":
            print(f"psfusion-export: run it with: psfusion_node --ros-args -p backend:={args.backend} -p "
                  f"engine_path:={out.resolve()} -p precision:={args.precision} -p network_height:={size[0]} "
                  f"-p network_width:={size[1]}" + (f" -p checkpoint:={config.checkpoint}" if config.checkpoint
                                                    else ""))
        return 0

    return run_cli("psfusion-export", run)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
