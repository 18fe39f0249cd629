"""CUDA-graph replay of the eager and compile engines. On a CPU only the fallback runs (nothing else changes there);
the capture itself runs on CUDA (skipped without a GPU; ``make gpu-check`` times it at 480x640)."""

from __future__ import annotations

import copy
import logging

import pytest
import torch

from psfusion_ros import PSFusion
from psfusion_ros.pipeline.engines import compiled
from psfusion_ros.pipeline.engines.base import InferenceOutput, agreement
from psfusion_ros.pipeline.engines.cuda_graphs import CudaGraphRunner
from psfusion_ros.pipeline.engines.eager import EagerEngine
from psfusion_ros.tools.backend_timing import validation_pair

NET = (64, 96)
CPU = torch.device("cpu")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_on_a_cpu_the_engines_run_the_network_directly(det_model: PSFusion) -> None:
    engine = EagerEngine(det_model, CPU, "fp32", cuda_graphs=True)
    assert engine.run is engine.graph  # cuda_graphs has no effect on a CPU
    pair = validation_pair(NET, CPU)
    out = engine(*pair)
    engine.close()
    assert out.fused.shape == (1, 1, *NET)


def test_a_capture_that_cannot_happen_falls_back_with_one_log_line(det_model: PSFusion, caplog) -> None:
    """A CPU device cannot be captured: the runner says why once and then runs the network as it is."""
    graph = EagerEngine(det_model, CPU, "fp32").graph
    runner = CudaGraphRunner(graph, CPU)
    pair = validation_pair(NET, CPU)
    with caplog.at_level(logging.INFO, logger="psfusion_ros.engines"):
        first, second = runner(*pair), runner(*pair)
    with torch.inference_mode():
        direct = graph(*pair)
    assert not runner.captured and runner.failed
    warnings = [r for r in caplog.records if "CUDA graph capture impossible" in r.getMessage()]
    assert len(warnings) == 1 and "running without CUDA graphs" in warnings[0].getMessage()
    for out in (first, second):
        assert torch.equal(out[0], direct[0]) and torch.equal(out[1], direct[1])


def _to_cpu(out) -> InferenceOutput:
    return InferenceOutput(out[0].float().cpu(), out[1].float().cpu())


@needs_cuda
@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16"])
def test_cuda_graph_replay_equals_the_uncaptured_network(det_model: PSFusion, precision: str) -> None:
    cuda = torch.device("cuda")
    model = copy.deepcopy(det_model).to(cuda)
    plain = EagerEngine(model, cuda, precision, cuda_graphs=False)
    graphed = EagerEngine(model, cuda, precision, cuda_graphs=True)
    a = tuple(t.to(cuda) for t in validation_pair(NET, CPU))
    b = (a[0].flip(-1).contiguous(), a[1].flip(-2).contiguous())
    out_a = graphed(*a)
    assert isinstance(graphed.run, CudaGraphRunner) and graphed.run.captured, graphed.run.failed
    kept = _to_cpu(out_a)
    out_b = graphed(*b)  # a new frame is copied into the static inputs
    assert torch.equal(_to_cpu(out_a).fused, kept.fused)  # returned tensors are copies, not the static buffers
    for frame, out in ((a, out_a), (b, out_b)):
        score = agreement(_to_cpu(plain(*frame)), _to_cpu(out))
        assert score["fused_psnr_db"] >= 60 and score["mask_agreement"] >= 0.999, score
    odd = tuple(torch.nn.functional.interpolate(t, size=(32, 64)) for t in a)
    assert graphed(*odd).fused.shape[-2:] == (32, 64)  # another size runs uncaptured
    graphed.close()
    assert not graphed.run.captured


@needs_cuda
def test_a_network_with_a_host_sync_falls_back_on_cuda(det_model: PSFusion, caplog) -> None:
    cuda = torch.device("cuda")

    def synced(vi: torch.Tensor, ir: torch.Tensor):
        scale = float(vi.mean().item())  # a host sync: illegal while capturing
        return vi[:, :1] * scale, ir

    runner = CudaGraphRunner(synced, cuda)
    vi, ir = (t.to(cuda) for t in validation_pair(NET, CPU))
    with caplog.at_level(logging.INFO, logger="psfusion_ros.engines"):
        out = runner(vi, ir)
    assert not runner.captured and runner.failed
    assert torch.allclose(out[0], vi[:, :1] * vi.mean())


@needs_cuda
def test_compiled_engine_with_cuda_graphs(det_model: PSFusion) -> None:
    cuda = torch.device("cuda")
    model = copy.deepcopy(det_model).to(cuda)
    module = compiled.compile_in_process(model, cuda, "fp16", NET)
    plain = compiled.CompiledEngine(module, cuda, "fp16", 9, "torch.compile")
    graphed = compiled.CompiledEngine(module, cuda, "fp16", 9, "torch.compile", cuda_graphs=True)
    pair = tuple(t.to(cuda) for t in validation_pair(NET, CPU))
    score = agreement(_to_cpu(plain(*pair)), _to_cpu(graphed(*pair)))
    assert graphed.run.captured, graphed.run.failed
    assert score["fused_psnr_db"] >= 60 and score["mask_agreement"] >= 0.999, score
