"""``tensorrt``: a Torch-TensorRT program built once on the target GPU by ``psfusion-export`` and loaded without a
rebuild. Written to the documented API of both generations in the field: Torch-TensorRT >= 2.13 (precision from
the graph's dtypes: the inference graph is cast to fp16 with the fused-image head in fp32) and 2.8 on JetPack 6.2
(``enabled_precisions``). ``torch_tensorrt`` calls CUDA while importing, so it is imported only here, only when
asked for."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from psfusion_ros.errors import EngineError, one_line
from psfusion_ros.model.inference import InferenceGraph
from psfusion_ros.model.psfusion import PSFusion
from psfusion_ros.pipeline.config import EngineConfig
from psfusion_ros.pipeline.engines.artifact import check_artifact
from psfusion_ros.pipeline.engines.base import InferenceOutput, check_precision

#: First Torch-TensorRT release whose dynamo path is strongly typed (``enabled_precisions`` ignored).
EXPLICIT_TYPING_FROM = (2, 13)


def import_torch_tensorrt() -> Any:
    try:
        import torch_tensorrt
    except Exception as exc:  # noqa: BLE001 - ImportError, or CUDA/TensorRT errors raised while importing
        raise EngineError(f"torch_tensorrt cannot be imported ({type(exc).__name__}: {one_line(exc)[:120]}); "
                          "install it for this GPU (README: Deployment) or use backend compile") from None
    return torch_tensorrt


def api_version(torch_tensorrt: Any) -> tuple[int, int]:
    major, minor = (int("".join(c for c in part if c.isdigit()) or 0)
                    for part in torch_tensorrt.__version__.split(".")[:2])
    return major, minor


def compile_settings(version: tuple[int, int], precision: str, inputs: list[torch.Tensor],
                     hardware_compatible: bool, version_compatible: bool) -> dict[str, Any]:
    """``torch_tensorrt.compile`` keyword arguments for this API generation (testable without a GPU)."""
    settings: dict[str, Any] = {"ir": "dynamo", "hardware_compatible": hardware_compatible,
                                "version_compatible": version_compatible, "cache_built_engines": True,
                                "reuse_cached_engines": True}
    if version >= EXPLICIT_TYPING_FROM:
        settings["arg_inputs"] = inputs  # precision comes from the cast graph
        settings["use_explicit_typing"] = True
    else:
        settings["inputs"] = inputs
        settings["enabled_precisions"] = {torch.float16, torch.float32} if precision == "fp16" else {torch.float32}
    return settings


def export_program(model: PSFusion, precision: str, network_size: tuple[int, int], device: torch.device,
                   path: str | Path, hardware_compatible: bool = False, version_compatible: bool = False) -> Path:
    """Build the TensorRT program on this GPU and save it as an ExportedProgram (loaded later without a rebuild)."""
    torch_tensorrt = import_torch_tensorrt()
    version = api_version(torch_tensorrt)
    graph_precision = precision if version >= EXPLICIT_TYPING_FROM else "fp32"
    graph = InferenceGraph(model, graph_precision).to(device).eval()
    inputs = [torch.rand(1, 3, *network_size, device=device), torch.rand(1, 1, *network_size, device=device)]
    settings = compile_settings(version, precision, inputs, hardware_compatible, version_compatible)
    with torch.inference_mode():
        program = torch_tensorrt.compile(graph, **settings)
    save_inputs = {"arg_inputs": inputs} if version >= EXPLICIT_TYPING_FROM else {"inputs": inputs}
    torch_tensorrt.save(program, str(path), output_format="exported_program", **save_inputs)
    return Path(path)


def load_program(path: str | Path, cudagraphs: bool = True) -> Any:
    torch_tensorrt = import_torch_tensorrt()
    try:
        module = torch_tensorrt.load(str(path)).module()
    except Exception as exc:  # noqa: BLE001 - "No compatible device", "Unable to deserialize", ABI mismatches
        raise EngineError(f"{path}: TensorRT cannot load this program ({type(exc).__name__}: "
                          f"{one_line(exc)[:160]}); re-run psfusion-export on this machine") from None
    if cudagraphs:
        try:  # one launch per frame instead of one per layer
            return torch_tensorrt.runtime.enable_cudagraphs(module).__enter__()
        except Exception:  # noqa: BLE001 - older releases: run without CUDA graphs
            return module
    return module


class TensorRTEngine:
    name = "tensorrt"

    def __init__(self, module: Any, device: torch.device, precision: str, num_classes: int) -> None:
        self.module, self.device, self.precision, self.num_classes = module, device, precision, num_classes

    def __call__(self, vi: torch.Tensor, ir: torch.Tensor) -> InferenceOutput:
        with torch.inference_mode():
            fused, semantic = self.module(vi, ir)
        return InferenceOutput(fused.float(), semantic.float())


def create(config: EngineConfig, model: PSFusion, device: torch.device,
           network_size: tuple[int, int] | None) -> TensorRTEngine:
    check_precision(config.precision, device)
    if device.type != "cuda":
        raise EngineError("backend tensorrt needs a CUDA GPU")
    meta = check_artifact(config.engine_path, "tensorrt", config.precision, network_size,
                          getattr(model, "checkpoint_path", None), device)
    return TensorRTEngine(load_program(config.engine_path), device, config.precision,
                          int(meta.get("num_classes", model.num_classes)))
