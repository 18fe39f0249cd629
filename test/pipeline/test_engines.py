"""Engines behind one interface, on the real network at small sizes (64x96), compared with eager fp32."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from psfusion_ros import PSFusion
from psfusion_ros.errors import EngineError
from psfusion_ros.model.checkpoint import load_checkpoint
from psfusion_ros.model.inference import InferenceGraph
from psfusion_ros.model.precision import POLICIES
from psfusion_ros.pipeline.engines import compiled, onnx, tensorrt
from psfusion_ros.pipeline.engines.artifact import check_artifact, checkpoint_sha256, sidecar_path
from psfusion_ros.pipeline.engines.base import InferenceOutput, agreement
from psfusion_ros.pipeline.engines.eager import EagerEngine
from psfusion_ros.tools.backend_timing import validation_pair

NET = (64, 96)
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def pair() -> tuple[torch.Tensor, torch.Tensor]:
    return validation_pair(NET, CPU)


@pytest.fixture(scope="module")
def reference(det_model: PSFusion, pair) -> InferenceOutput:
    return EagerEngine(det_model, CPU, "fp32")(*pair)


def test_the_inference_graph_equals_the_full_network(det_model: PSFusion, pair, reference: InferenceOutput) -> None:
    with torch.inference_mode():
        full = det_model(*pair)
    assert (full.fused - reference.fused).abs().max() < 1e-5
    assert (full.semantic - reference.semantic).abs().max() < 1e-5


def test_the_inference_graph_exports_whole_at_480x640(det_model: PSFusion) -> None:
    """The capture the TensorRT dynamo frontend and AOTInductor start from: one graph, no breaks."""
    graph = InferenceGraph(det_model, "fp32").eval()
    inputs = (torch.rand(1, 3, 480, 640), torch.rand(1, 1, 480, 640))
    with torch.inference_mode():
        exported = torch.export.export(graph, inputs, strict=False)
    assert len(exported.graph_signature.user_outputs) == 2
    explanation = torch._dynamo.explain(graph)(*inputs)
    assert explanation.graph_break_count == 0 and explanation.graph_count == 1


def test_bf16_by_cast_stays_close_to_fp32(det_model: PSFusion, pair, reference: InferenceOutput) -> None:
    bf16 = EagerEngine(det_model, CPU, "bf16")
    assert next(bf16.graph.net.parameters()).dtype == torch.bfloat16
    assert bf16.graph.net.pred_fusion.conv_block[0].weight.dtype == torch.float32  # the fused head stays fp32
    score = agreement(reference, bf16(*pair))
    # the closed-form test weights are far from trained ones and amplify rounding (28 dB here); seeded weights give
    # ~52 dB and the trained network 39.9 dB at 480x640 (psfusion-bench backends measures it per machine)
    assert score["fused_psnr_db"] >= 25 and score["mask_agreement"] >= 0.98, score


def _run_in_fresh_process(package: Path, pair, device: str, tmp_path: Path) -> InferenceOutput:
    """Load an AOTInductor package in a new interpreter, as the node does at start-up, and run it once."""
    torch.save(pair, tmp_path / "pair.pt")
    code = (f"import torch; from psfusion_ros.pipeline.engines.compiled import load_package\n"
            f"m = load_package({str(package)!r}); vi, ir = torch.load({str(tmp_path / 'pair.pt')!r})\n"
            f"with torch.inference_mode(): out = m(vi.to({device!r}), ir.to({device!r}))\n"
            f"torch.save([t.float().cpu() for t in out], {str(tmp_path / 'out.pt')!r})")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return InferenceOutput(*torch.load(tmp_path / "out.pt"))


def test_aoti_package_loads_in_a_fresh_process_with_the_same_outputs(aoti_artifact: Path, pair, reference,
                                                                    tmp_path: Path) -> None:
    score = agreement(reference, _run_in_fresh_process(aoti_artifact, pair, "cpu", tmp_path))
    assert score["fused_psnr_db"] >= 60 and score["mask_agreement"] >= 0.999, score
    meta = json.loads(sidecar_path(aoti_artifact).read_text())
    assert meta["backend"] == "compile" and meta["network_size"] == [64, 96] and meta["accuracy"]["fused_psnr_db"] >= 60
    assert meta["precision_policy"] == POLICIES[meta["precision"]].describe()


def test_onnx_export_runs_in_onnxruntime(onnx_artifact: dict, pair) -> None:
    """The file ``psfusion-export --backend onnx`` wrote (``export_onnx``) against eager on the same weights."""
    engine = onnx.OnnxRuntimeEngine(onnx_artifact["path"], CPU, 9)
    assert [i.name for i in engine.session.get_inputs()] == ["vi", "ir"]
    assert [o.name for o in engine.session.get_outputs()] == ["fused", "semantic"]
    reference = EagerEngine(load_checkpoint(onnx_artifact["checkpoint"]), CPU, "fp32")(*pair)
    score = agreement(reference, engine(*pair))
    assert score["fused_psnr_db"] >= 60 and score["mask_agreement"] >= 0.999, score


# -- sidecars: what an artifact was built for, refused with one line when it does not fit -----------------------
@pytest.fixture()
def fake_artifact(tmp_path: Path, official_checkpoint: Path) -> Path:
    path = tmp_path / "psfusion.pt2"
    path.write_bytes(b"not loaded by the checks")
    from psfusion_ros.pipeline.engines.artifact import environment, write_sidecar

    write_sidecar(path, {"backend": "compile", "precision": "fp32", "network_size": [64, 96],
                         "input_layout": "contiguous", "checkpoint_sha256": checkpoint_sha256(official_checkpoint),
                         "environment": environment(CPU)})
    return path


def _edit(path: Path, **changes: object) -> None:
    side = sidecar_path(path)
    meta = json.loads(side.read_text())
    for key, value in changes.items():
        if key in ("torch", "cpu_capability", "device"):
            meta["environment"][key] = value
        else:
            meta[key] = value
    side.write_text(json.dumps(meta))


@pytest.mark.parametrize(("changes", "message"), [
    ({"network_size": [96, 128]}, "exported for network size 96x128, this node needs 64x96"),
    ({"precision": "bf16"}, "exported for precision bf16, this node needs fp32"),
    ({"input_layout": "permuted"}, "exported for input layout permuted, this node needs contiguous"),
    ({"backend": "tensorrt"}, "exported for backend tensorrt, this node needs compile"),
    ({"checkpoint_sha256": "0" * 64}, "exported for other weights (sha256 000000000000 vs best_model.pth sha256"),
    ({"torch": "2.99.0"}, "exported for torch 2.99.0, this node needs"),
    ({"cpu_capability": "AVX2"}, "exported for CPU instruction set AVX2"),
    ({"device": "cuda"}, "exported for device cuda, this node needs cpu"),
])
def test_mismatched_artifacts_are_refused_with_one_line(fake_artifact: Path, official_checkpoint: Path,
                                                        changes: dict, message: str) -> None:
    assert check_artifact(fake_artifact, "compile", "fp32", NET, str(official_checkpoint), CPU)["backend"] == "compile"
    _edit(fake_artifact, **changes)
    with pytest.raises(EngineError) as info:
        check_artifact(fake_artifact, "compile", "fp32", NET, str(official_checkpoint), CPU)
    assert message in str(info.value) and "re-run psfusion-export on this machine" in str(info.value)
    assert "\n" not in str(info.value)


def test_a_package_built_under_another_precision_policy_is_refused(fake_artifact: Path,
                                                                   official_checkpoint: Path) -> None:
    """bf16 means the measured mixed policy; a package whose fp32 blocks differ was built by another release."""
    policy = POLICIES["bf16"].describe()
    _edit(fake_artifact, precision="bf16", precision_policy=policy)
    assert check_artifact(fake_artifact, "compile", "bf16", NET, str(official_checkpoint), CPU)["precision"] == "bf16"
    _edit(fake_artifact, precision_policy={**policy, "fp32_blocks": ["seg_decoder"]})
    with pytest.raises(EngineError, match=r"exported for bf16 policy with fp32 blocks \['seg_decoder'\], this node "
                       r"needs \[.*\]; re-run psfusion-export"):
        check_artifact(fake_artifact, "compile", "bf16", NET, str(official_checkpoint), CPU)


@pytest.mark.parametrize(("changes", "message"), [
    ({"environment": "cpu"}, "environment must be a mapping, got 'cpu'"),
    ({"network_size": 64}, "network_size must be [height, width] (two integers), got 64"),
    ({"network_size": [64, "96"]}, "network_size must be [height, width]"),
    ({"checkpoint_sha256": 12345}, "checkpoint_sha256 must be a sha256 hex string or null, got 12345"),
    ({"torch": ["2.13"]}, "environment.torch must be a string or null"),
    ({"version_compatible": "yes"}, "version_compatible must be true or false"),
    ({"num_classes": 9.5}, "num_classes must be a positive integer"),
    ({"backend": None}, "backend must be a string"),
])
def test_sidecar_values_of_the_wrong_type_are_one_line(fake_artifact: Path, official_checkpoint: Path,
                                                       changes: dict, message: str) -> None:
    _edit(fake_artifact, **changes)
    with pytest.raises(EngineError) as info:
        check_artifact(fake_artifact, "compile", "fp32", NET, str(official_checkpoint), CPU)
    text = str(info.value)
    assert message in text and text.endswith("re-run psfusion-export on this machine") and "\n" not in text, text


def test_missing_or_broken_sidecars_and_artifacts(fake_artifact: Path, official_checkpoint: Path) -> None:
    sidecar_path(fake_artifact).write_text("{broken")
    with pytest.raises(EngineError, match="unreadable sidecar"):
        check_artifact(fake_artifact, "compile", "fp32", NET, str(official_checkpoint), CPU)
    sidecar_path(fake_artifact).unlink()
    with pytest.raises(EngineError, match="sidecar psfusion.pt2.json is missing"):
        check_artifact(fake_artifact, "compile", "fp32", NET, str(official_checkpoint), CPU)
    with pytest.raises(EngineError, match="no such engine file"):
        check_artifact(fake_artifact.with_name("gone.pt2"), "compile", "fp32", NET, None, CPU)
    with pytest.raises(EngineError, match="cannot load the AOTInductor package"):
        compiled.load_package(fake_artifact)  # garbage bytes: one line, not a traceback


def test_a_portable_tensorrt_program_may_run_on_another_ampere_gpu(tmp_path: Path) -> None:
    """hardware_compatible programs (Ampere+) run on another compute capability; others are refused."""
    from psfusion_ros.pipeline.engines import artifact

    path = tmp_path / "p.ep"
    path.write_bytes(b"x")
    built = {"device": "cuda", "compute_capability": [8, 6], "torch_tensorrt": "2.14.0", "tensorrt": "10.14"}
    here = {**built, "compute_capability": [8, 9]}
    artifact.write_sidecar(path, {"backend": "tensorrt", "precision": "fp16", "network_size": [480, 640],
                                  "checkpoint_sha256": None, "environment": built, "hardware_compatible": True})
    cuda = torch.device("cuda", 0)
    original = artifact.environment
    artifact.environment = lambda device: here  # this test machine has no GPU: describe one
    try:
        assert check_artifact(path, "tensorrt", "fp16", (480, 640), None, cuda)
        _edit(path, hardware_compatible=False)
        with pytest.raises(EngineError, match=r"GPU compute capability \[8, 6\], this node needs \[8, 9\]"):
            check_artifact(path, "tensorrt", "fp16", (480, 640), None, cuda)
    finally:
        artifact.environment = original


# -- TensorRT: everything around the parts that need a GPU ---------------------------------------------------------
#: ``torch_tensorrt.dynamo.compile``'s keyword parameters that matter here, name → line of its signature in
#: ``py/torch_tensorrt/dynamo/_compiler.py`` at each release tag of pytorch/TensorRT (``git show TAG:path``; 2.14 is
#: HEAD, version.txt 2.14.0a0). Also read there: ``dynamo/_defaults.py`` USE_EXPLICIT_TYPING = False in v2.8.0 (:49),
#: True in v2.10.0 (:49) and v2.12.0 (:52), gone from v2.13.0; under explicit typing ``compile`` raises unless
#: ``enabled_precisions`` is fp32 (or fp4) alone (v2.8.0 :259-266, v2.10.0 :259-266, v2.12.0 :269-276), and its
#: default {f32} passes; v2.8.0 ``dynamo/conversion/_TRTInterpreter.py:93-97`` builds a STRONGLY_TYPED network when
#: the flag is set. ``torch_tensorrt.save`` takes ``arg_inputs`` in every one (``_compile.py`` v2.8.0 :585, v2.12.0
#: :654, v2.13.0 :659, HEAD :697), ``retrace`` defaults to False in v2.8.0 (:587) and True from v2.12.0 (:656).
COMPILE_SIGNATURES = {
    (2, 8): {"arg_inputs": 398, "device": 400, "enabled_precisions": 404, "version_compatible": 420,
             "hardware_compatible": 426, "cache_built_engines": 429, "reuse_cached_engines": 430,
             "use_explicit_typing": 434, "immutable_weights": 438},
    (2, 10): {"arg_inputs": 401, "device": 403, "enabled_precisions": 407, "version_compatible": 423,
              "hardware_compatible": 429, "cache_built_engines": 432, "reuse_cached_engines": 433,
              "use_explicit_typing": 437, "immutable_weights": 441},
    (2, 12): {"arg_inputs": 430, "device": 432, "enabled_precisions": 436, "version_compatible": 452,
              "hardware_compatible": 458, "cache_built_engines": 463, "reuse_cached_engines": 464,
              "use_explicit_typing": 468, "immutable_weights": 472},
    (2, 13): {"arg_inputs": 406, "device": 408, "version_compatible": 425, "hardware_compatible": 431,
              "cache_built_engines": 434, "reuse_cached_engines": 435, "immutable_weights": 442},
    (2, 14): {"arg_inputs": 438, "device": 440, "version_compatible": 458, "hardware_compatible": 464,
              "cache_built_engines": 467, "reuse_cached_engines": 468, "immutable_weights": 475},
}
EXPECTED_KEYWORDS = {
    (2, 8): {"ir", "arg_inputs", "device", "hardware_compatible", "version_compatible", "use_explicit_typing"},
    (2, 10): {"ir", "arg_inputs", "device", "hardware_compatible", "version_compatible", "use_explicit_typing"},
    (2, 12): {"ir", "arg_inputs", "device", "hardware_compatible", "version_compatible", "use_explicit_typing"},
    (2, 13): {"ir", "arg_inputs", "device", "hardware_compatible", "version_compatible"},
    (2, 14): {"ir", "arg_inputs", "device", "hardware_compatible", "version_compatible"},
}


@pytest.mark.parametrize("version", sorted(EXPECTED_KEYWORDS))
def test_tensorrt_keywords_per_release(version: tuple[int, int]) -> None:
    inputs = [torch.zeros(1, 3, *NET), torch.zeros(1, 1, *NET)]
    device = torch.device("cuda", 1)
    settings = tensorrt.compile_settings(version, inputs, device, hardware_compatible=True, version_compatible=False)
    assert set(settings) == EXPECTED_KEYWORDS[version]
    signature = COMPILE_SIGNATURES[version]
    assert all(key in signature for key in settings if key != "ir"), set(settings) - set(signature)  # none swallowed
    assert settings["ir"] == "dynamo" and settings["arg_inputs"] is inputs and settings["device"] == device
    assert settings["hardware_compatible"] and not settings["version_compatible"]
    assert "enabled_precisions" not in settings  # precision comes from the cast graph, never a hint list
    if "use_explicit_typing" in settings:
        assert settings["use_explicit_typing"] is True


def test_tensorrt_releases_between_and_before_the_table() -> None:
    inputs: list[torch.Tensor] = []
    cpu = torch.device("cpu")
    assert set(tensorrt.compile_settings((2, 9), inputs, cpu, False, False)) == EXPECTED_KEYWORDS[(2, 8)]
    assert set(tensorrt.compile_settings((2, 11), inputs, cpu, False, False)) == EXPECTED_KEYWORDS[(2, 10)]
    assert set(tensorrt.compile_settings((3, 0), inputs, cpu, False, False)) == EXPECTED_KEYWORDS[(2, 14)]
    with pytest.raises(EngineError, match="older than 2.8"):
        tensorrt.compile_settings((2, 7), inputs, cpu, False, False)
    fake = type("M", (), {"__version__": "2.14.0a0+cu130"})
    assert tensorrt.api_version(fake) == (2, 14)


class _Graphs:
    """Torch-TensorRT's ``enable_cudagraphs`` context manager as the engine sees it: enter returns the module to
    run, exit switches the process-wide mode back (``runtime/_cudagraphs.py``)."""

    log: list[str] = []

    def __init__(self, module: object, fail: bool = False) -> None:
        self.module, self.fail = module, fail

    def __enter__(self) -> object:
        self.log.append("enter")
        if self.fail:
            raise RuntimeError("dynamic output allocator")
        return ("graphed", self.module)

    def __exit__(self, *exc: object) -> None:
        self.log.append("exit")


def test_tensorrt_cuda_graphs_are_held_by_the_engine_and_released_by_close() -> None:
    _Graphs.log = []
    runtime = type("R", (), {"enable_cudagraphs": staticmethod(lambda m: _Graphs(m))})
    engine = tensorrt.TensorRTEngine("program", torch.device("cpu"), "fp16", 9, cudagraphs=True, runtime=runtime)
    assert engine.module == ("graphed", "program") and _Graphs.log == ["enter"] and not engine.cudagraphs_note
    engine.close()
    engine.close()  # idempotent: the mode is switched back once
    assert _Graphs.log == ["enter", "exit"]
    _Graphs.log = []
    failing = type("R", (), {"enable_cudagraphs": staticmethod(lambda m: _Graphs(m, fail=True))})
    engine = tensorrt.TensorRTEngine("program", torch.device("cpu"), "fp16", 9, cudagraphs=True, runtime=failing)
    assert engine.module == "program" and "CUDA graphs off" in engine.cudagraphs_note
    assert _Graphs.log == ["enter", "exit"]  # a failed capture does not leave whole-graph mode on
    engine.close()
    assert _Graphs.log == ["enter", "exit"]


def test_without_torch_tensorrt_the_backend_is_a_one_line_error() -> None:
    try:
        import torch_tensorrt  # noqa: F401
    except Exception:  # noqa: BLE001 - the usual case on these machines
        with pytest.raises(EngineError, match="torch_tensorrt cannot be imported"):
            tensorrt.import_torch_tensorrt()
    else:
        pytest.skip("torch_tensorrt is installed here: the real TensorRT tests below run instead")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU and torch_tensorrt (psfusion-export "
                    "--self-check runs this path on GPU machines)")
def test_tensorrt_program_round_trip(det_model: PSFusion, tmp_path: Path) -> None:
    pytest.importorskip("torch_tensorrt", reason="torch_tensorrt not installed")
    cuda = torch.device("cuda")
    path = tensorrt.export_program(det_model.to(cuda), "fp16", NET, cuda, tmp_path / "p.ep")
    engine = tensorrt.TensorRTEngine(tensorrt.load_program(path), cuda, "fp16", 9)
    pair = validation_pair(NET, cuda)
    score = agreement(EagerEngine(det_model, cuda, "fp32")(*pair), engine(*pair))
    assert score["fused_psnr_db"] >= 35 and score["mask_agreement"] >= 0.98, score
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_agreement_measures() -> None:
    a = InferenceOutput(torch.full((1, 1, 4, 4), 0.5), torch.zeros(1, 3, 4, 4))
    b = InferenceOutput(torch.full((1, 1, 4, 4), 0.6), torch.zeros(1, 3, 4, 4))
    b.semantic[0, 1, 0, :] = 1.0  # one row of pixels changes class
    score = agreement(a, b)
    assert score["fused_psnr_db"] == pytest.approx(20.0, abs=0.01) and score["mask_agreement"] == 0.75
    assert agreement(a, a)["fused_psnr_db"] == 200.0 and np.isfinite(agreement(a, a)["mask_agreement"])


# -- CUDA (skipped without a GPU; `make gpu-check` runs the same paths at full size) ----------------------------
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@needs_cuda
@pytest.mark.parametrize(("backend", "precision"), [("eager", "fp32"), ("eager", "fp16"), ("eager", "bf16"),
                                                    ("compile", "fp16")])
def test_cuda_engines_agree_with_eager_fp32_on_the_cpu(det_model: PSFusion, pair, reference: InferenceOutput,
                                                       backend: str, precision: str) -> None:
    cuda = torch.device("cuda")
    model = copy.deepcopy(det_model).to(cuda)
    if backend == "eager":
        engine = EagerEngine(model, cuda, precision)
    else:
        engine = compiled.CompiledEngine(compiled.compile_in_process(model, cuda, precision, NET), cuda, precision,
                                         9, "torch.compile")
    out = engine(*(t.to(cuda) for t in pair))
    assert out.fused.device.type == "cuda"
    score = agreement(reference, InferenceOutput(out.fused.float().cpu(), out.semantic.float().cpu()))
    floor = 50 if precision == "fp32" else 25  # the closed-form weights amplify rounding (see the bf16 test above)
    assert score["fused_psnr_db"] >= floor and score["mask_agreement"] >= 0.98, score


@needs_cuda
def test_cuda_aoti_package_round_trip(det_model: PSFusion, pair, reference: InferenceOutput, tmp_path: Path) -> None:
    """Exported here, loaded in a fresh process as the node loads it (torch 2.11 crashed loading a CUDA package in
    the process that had just compiled it)."""
    cuda = torch.device("cuda")
    graph = InferenceGraph(copy.deepcopy(det_model).to(cuda), "fp16").eval()
    path = compiled.export_package(graph, tuple(t.to(cuda) for t in pair), tmp_path / "psfusion_fp16.pt2")
    score = agreement(reference, _run_in_fresh_process(path, pair, "cuda", tmp_path))
    assert score["fused_psnr_db"] >= 25 and score["mask_agreement"] >= 0.98, score


def test_the_in_process_compile_serves_frames_without_recompiling(det_model: PSFusion, pair, reference) -> None:
    """Frames come as permuted NHWC views made outside inference mode; the warm-up compiled the graph for them, so
    the first frame does not recompile (it did: ~8 s at 480x640, and without freezing)."""
    module = compiled.compile_in_process(det_model, CPU, "fp32", NET)
    engine = compiled.CompiledEngine(module, CPU, "fp32", 9, "torch.compile")
    vi = pair[0].permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)  # as FusionPipeline.run_batch hands it over
    assert not vi.is_contiguous()
    with torch._dynamo.config.patch(error_on_recompile=True):
        out = engine(vi, pair[1])
    assert agreement(reference, out)["fused_psnr_db"] >= 60
