"""CUDA graphs for the eager and compile engines: one capture of the whole network, replayed per frame.

At 480x640 eager PSFusion is launch-bound on a large GPU (H100: fp16 = fp32 = 30 ms, a few hundred kernels each
a few microseconds long), so the time goes to the CPU issuing kernels. A captured graph issues them all at once.
The capture runs after a warm-up on a side stream (cuDNN picks its algorithms then), on static input buffers;
each call copies the frame into them, replays, and returns copies of the static outputs (the next replay would
overwrite them while the pipeline still reads the mask). A network that cannot be captured (a host sync, an
unsupported op) runs uncaptured, with one log line saying why.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch

from psfusion_ros.errors import one_line

log = logging.getLogger("psfusion_ros.engines")

Network = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
WARMUP_RUNS = 3


class CudaGraphRunner:
    """``runner(vi, ir)`` = ``network(vi, ir)``, replayed from a graph captured at the first call's shapes."""

    def __init__(self, network: Network, device: torch.device) -> None:
        self.network, self.device = network, device
        self.graph: torch.cuda.CUDAGraph | None = None
        self.static_inputs: tuple[torch.Tensor, ...] = ()
        self.static_outputs: tuple[torch.Tensor, ...] = ()
        self.failed: str | None = None  # why capture was impossible (then every call runs uncaptured)

    @property
    def captured(self) -> bool:
        return self.graph is not None

    def _capture(self, vi: torch.Tensor, ir: torch.Tensor) -> None:
        self.static_inputs = (vi.clone(), ir.clone())
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side), torch.inference_mode():
            for _ in range(WARMUP_RUNS):
                self.network(*self.static_inputs)
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph), torch.inference_mode():
            self.static_outputs = tuple(self.network(*self.static_inputs))
        self.graph = graph

    def __call__(self, vi: torch.Tensor, ir: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.failed is None and self.graph is None:
            try:
                self._capture(vi, ir)
                log.info("CUDA graph captured at %dx%d", *vi.shape[-2:])
            except Exception as exc:  # noqa: BLE001 - any capture failure: run the network as it is
                self.failed = f"{type(exc).__name__}: {one_line(exc)[:160]}"
                self.graph, self.static_outputs = None, ()
                log.warning("CUDA graph capture impossible (%s); running without CUDA graphs", self.failed)
        if self.graph is None or vi.shape != self.static_inputs[0].shape or ir.shape != self.static_inputs[1].shape:
            with torch.inference_mode():
                return tuple(self.network(vi, ir))  # type: ignore[return-value]
        self.static_inputs[0].copy_(vi)
        self.static_inputs[1].copy_(ir)
        self.graph.replay()
        return tuple(o.clone() for o in self.static_outputs)  # type: ignore[return-value]

    def close(self) -> None:
        """Free the graph's memory pool (the engine's close/shutdown)."""
        self.graph, self.static_inputs, self.static_outputs = None, (), ()


def maybe_cuda_graphs(network: Network, device: torch.device, enabled: bool) -> Network | CudaGraphRunner:
    """The network wrapped for CUDA-graph replay on CUDA when enabled; unchanged on a CPU. On CUDA, cuDNN also
    benchmarks its convolution algorithms once: the engines always run at one network size."""
    if device.type != "cuda":
        return network
    torch.backends.cudnn.benchmark = True
    return CudaGraphRunner(network, device) if enabled else network
