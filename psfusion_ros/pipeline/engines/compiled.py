"""``compile``: TorchInductor, in process (``torch.compile`` with freezing: compiles at start-up, a minute or more)
or from an AOTInductor package made by ``psfusion-export --backend compile`` (loads in about a second, no compiler
needed). CPU and CUDA; on this 2-core CPU, bf16 through Inductor ran 3-4x faster than eager fp32."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch

from psfusion_ros.errors import ConfigError, EngineError, one_line
from psfusion_ros.model.inference import InferenceGraph
from psfusion_ros.model.psfusion import PSFusion
from psfusion_ros.pipeline.config import EngineConfig
from psfusion_ros.pipeline.engines.artifact import check_artifact
from psfusion_ros.pipeline.engines.base import InferenceOutput, check_precision
from psfusion_ros.pipeline.engines.cuda_graphs import CudaGraphRunner, maybe_cuda_graphs

log = logging.getLogger("psfusion_ros.engines")


class CompiledEngine:
    name = "compile"

    def __init__(self, module: torch.nn.Module, device: torch.device, precision: str, num_classes: int,
                 source: str, cuda_graphs: bool = False) -> None:
        self.module, self.device, self.precision, self.num_classes = module, device, precision, num_classes
        self.source = source
        self.run = maybe_cuda_graphs(module, device, cuda_graphs)

    def __call__(self, vi: torch.Tensor, ir: torch.Tensor) -> InferenceOutput:
        # one memory layout for every caller (the pipeline hands over NHWC memory as a permuted view): a compiled
        # graph is specialized to its inputs' strides, and another layout recompiles it on the frame (~8 s here)
        vi, ir = vi.contiguous(), ir.contiguous()
        with torch.inference_mode():
            fused, semantic = self.run(vi, ir)
        return InferenceOutput(fused, semantic)

    def close(self) -> None:
        if isinstance(self.run, CudaGraphRunner):
            self.run.close()


def compile_in_process(model: PSFusion, device: torch.device, precision: str,
                       network_size: tuple[int, int]) -> torch.nn.Module:
    """``torch.compile`` with freezing, compiled now (one warm-up pass) so the first frame is not late."""
    graph = InferenceGraph(model, precision).to(device).eval()
    module = torch.compile(graph, dynamic=False)
    started = time.perf_counter()
    log.info("compiling PSFusion with TorchInductor at %dx%d %s (once per start; an AOTInductor package from "
             "psfusion-export avoids it) ...", *network_size, precision)
    # warm-up inputs made outside inference mode, like the frames: an inference tensor is another dispatch key
    # set, which the compiled graph's guards reject (the first real frame recompiled, without freezing)
    vi, ir = torch.zeros(1, 3, *network_size, device=device), torch.zeros(1, 1, *network_size, device=device)
    with torch._inductor.config.patch(freezing=True), torch.inference_mode():
        module(vi, ir)
    log.info("compiled in %.1f s", time.perf_counter() - started)
    return module


def export_package(graph: torch.nn.Module, inputs: tuple[torch.Tensor, ...], path: str | Path) -> Path:
    """AOTInductor: torch.export, then compile and package (weights included) into one ``.pt2`` file."""
    inputs = tuple(t.contiguous() for t in inputs)  # the layout CompiledEngine hands over
    with torch.inference_mode():
        exported = torch.export.export(graph, inputs, strict=False)
    return Path(torch._inductor.aoti_compile_and_package(exported, package_path=str(path),
                                                         inductor_configs={"freezing": True}))


def load_package(path: str | Path) -> torch.nn.Module:
    try:
        return torch._inductor.aoti_load_package(str(path))
    except Exception as exc:  # noqa: BLE001 - a broken or foreign package fails in many ways
        raise EngineError(f"{path}: cannot load the AOTInductor package ({type(exc).__name__}: "
                          f"{one_line(exc)[:160]}); re-run psfusion-export on this machine") from None


def create(config: EngineConfig, model: PSFusion, device: torch.device,
           network_size: tuple[int, int] | None) -> CompiledEngine:
    check_precision(config.precision, device)
    if network_size is None:
        raise ConfigError("backend compile needs a fixed network size (network_height/network_width)")
    if config.engine_path:
        meta = check_artifact(config.engine_path, "compile", config.precision, network_size,
                              _checkpoint_of(model), device)
        return CompiledEngine(load_package(config.engine_path), device, config.precision,
                              int(meta.get("num_classes", model.num_classes)), config.engine_path, config.cuda_graphs)
    return CompiledEngine(compile_in_process(model, device, config.precision, network_size), device,
                          config.precision, model.num_classes, "torch.compile", config.cuda_graphs)


def _checkpoint_of(model: PSFusion) -> str | None:
    return getattr(model, "checkpoint_path", None)
