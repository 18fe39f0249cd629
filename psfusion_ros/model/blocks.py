"""Small building blocks shared by PSFusion's encoder, fusion modules and decoders.

Class and attribute names follow the official code, because they are the checkpoint's parameter names.
"""

from __future__ import annotations

import torch
from torch import nn


class FReLU(nn.Module):
    """Funnel activation: max(x, BN(depthwise3x3(x)))."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv_frelu = nn.Conv2d(channels, channels, 3, 1, 1, groups=channels)
        self.bn_frelu = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Same values as max over a stacked pair, without allocating the stack.
        return torch.maximum(x, self.bn_frelu(self.conv_frelu(x)))


class BBasicConv2d(nn.Module):
    """Conv → BN → ReLU (the reference's ``BBasicConv2d``)."""

    def __init__(
        self,
        in_planes: int,
        out_planes: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
    ) -> None:
        super().__init__()
        self.basicconv = nn.Sequential(
            nn.Conv2d(in_planes, out_planes, kernel_size, stride, padding, bias=False),
            nn.BatchNorm2d(out_planes),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.basicconv(x)


class BasicConv2d(nn.Module):
    """Conv → BN with no activation (the reference defines a ReLU here but never applies it)."""

    def __init__(self, in_planes: int, out_planes: int, kernel_size: int = 3, padding: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_planes, out_planes, kernel_size, 1, padding, bias=False)
        self.bn = nn.BatchNorm2d(out_planes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


def conv_bn_relu_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """``BasicConv2d`` → BN → ReLU, the unit of the S2PM and DSRM decoders (note the double BN)."""
    return nn.Sequential(
        BasicConv2d(in_channels, out_channels), nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)
    )


class ConvBNReLU(nn.Module):
    """Conv → BN → ReLU6 with 'same' padding (names ``conv``/``bnop`` as in the checkpoint)."""

    def __init__(self, in_planes: int, out_planes: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_planes, out_planes, kernel_size, 1, kernel_size // 2, bias=False)
        self.bnop = nn.BatchNorm2d(out_planes)
        self.reluop = nn.ReLU6(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.reluop(self.bnop(self.conv(x)))


class Feature_extract(nn.Module):  # noqa: N801 - checkpoint name
    """Shallow feature extractor: a full-resolution branch (SFEB1) and a stride-2 branch (SFEB2)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        half = out_channels // 2
        self.SFEB1 = nn.Sequential(
            nn.Conv2d(in_channels, half, 7, 1, 3),
            nn.BatchNorm2d(half),
            FReLU(half),
            nn.Conv2d(half, half, 3, 1, 1),
            nn.BatchNorm2d(half),
            FReLU(half),
        )
        self.SFEB2 = nn.Sequential(
            nn.Conv2d(half, out_channels, 3, 2, 1),
            nn.BatchNorm2d(out_channels),
            FReLU(out_channels),
            nn.Conv2d(out_channels, out_channels, 3, 1, 1),
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        full = self.SFEB1(x)
        return full, self.SFEB2(full)


def squeeze_excite(channels: int, inter_channels: int) -> nn.Sequential:
    """Global pooling → 1x1 squeeze → 1x1 expand, with BN (the 'global attention' branches)."""
    return nn.Sequential(
        nn.AdaptiveAvgPool2d(1),
        nn.Conv2d(channels, inter_channels, 1),
        nn.BatchNorm2d(inter_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(inter_channels, channels, 1),
        nn.BatchNorm2d(channels),
    )
