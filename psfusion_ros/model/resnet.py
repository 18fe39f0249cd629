"""The ResNet-34 trunk PSFusion borrows, with torchvision's module names.

torchvision cannot be installed beside the pinned CPU torch, and the official checkpoint stores
torchvision's parameter names (``conv1``, ``bn1``, ``downsample.0`` ...), so the trunk is written here.
"""

from __future__ import annotations

import torch
from torch import nn

#: Blocks per stage of ResNet-34 (torchvision ``resnet34``).
RESNET34_BLOCKS = (3, 4, 6, 3)
RESNET34_WIDTHS = (64, 128, 256, 512)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (torchvision's ``BasicBlock``)."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_planes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


def resnet34_stage(index: int) -> nn.Sequential:
    """Stage ``index`` (0..3) of ResNet-34, i.e. torchvision's ``layer{index + 1}``."""
    planes = RESNET34_WIDTHS[index]
    in_planes = RESNET34_WIDTHS[max(index - 1, 0)]
    stride = 1 if index == 0 else 2
    blocks = [BasicBlock(in_planes, planes, stride)]
    blocks += [BasicBlock(planes, planes) for _ in range(RESNET34_BLOCKS[index] - 1)]
    return nn.Sequential(*blocks)
