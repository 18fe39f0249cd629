"""Decoders and heads: semantic (S2PM, S2P2), reconstruction (SIM, DSRM) and image heads (SFP, IFP)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from psfusion_ros.model.blocks import ConvBNReLU, conv_bn_relu_block, squeeze_excite


class S2M(nn.Module):
    """Scene-specific mask: depthwise spatial attention × channel attention, then BN."""

    def __init__(self, channels: int, r: int = 4) -> None:
        super().__init__()
        self.local_att = nn.Sequential(
            nn.Conv2d(channels, channels, 3, 1, 1, groups=channels),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, 1, 1, groups=channels),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, 1, 1, groups=channels),
            nn.BatchNorm2d(channels),
        )
        self.global_att = squeeze_excite(channels, channels // r)
        self.conv_block = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mask = torch.sigmoid(self.local_att(x) * self.global_att(x))
        return self.conv_block(mask * x)


def _image_head(channels: tuple[int, int] | list[int]) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(channels[0], channels[1], 3, padding=1), nn.Tanh())


class IFP(nn.Module):
    """Image head: 3x3 conv + tanh mapped to [0, 1] (produces the fused Y channel)."""

    def __init__(self, channels: tuple[int, int] | list[int]) -> None:
        super().__init__()
        self.conv_block = _image_head(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.conv_block(x) + 1) / 2


class SFP(nn.Module):
    """Scene-fidelity head: an S2M mask in front of the image head (visible / infrared reconstruction)."""

    def __init__(self, channels: tuple[int, int] | list[int]) -> None:
        super().__init__()
        self.mask = S2M(channels[0])
        self.conv_block = _image_head(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.conv_block(self.mask(x)) + 1) / 2


class SIM(nn.Module):
    """Semantic injection: instance-normalized features modulated by a map from the semantic features."""

    def __init__(self, norm_nc: int, label_nc: int, nhidden: int = 64) -> None:
        super().__init__()
        self.param_free_norm = nn.InstanceNorm2d(norm_nc, affine=False, track_running_stats=False)
        self.mlp_shared = nn.Sequential(nn.Conv2d(label_nc, nhidden, 3, padding=1), nn.ReLU())
        self.mlp_gamma = nn.Sequential(nn.Conv2d(nhidden, norm_nc, 3, padding=1), nn.Sigmoid())
        self.mlp_beta = nn.Conv2d(nhidden, norm_nc, 3, padding=1)
        self.bn = nn.BatchNorm2d(norm_nc)

    def forward(self, x: torch.Tensor, segmap: torch.Tensor) -> torch.Tensor:
        # The reference leaves align_corners at its default (False) here, unlike elsewhere.
        segmap = F.interpolate(segmap, size=x.shape[2:], mode="bilinear", align_corners=False)
        actv = self.mlp_shared(segmap)
        return self.bn(self.param_free_norm(x) * (1 + self.mlp_gamma(actv))) + self.mlp_beta(actv)


class S2PM(nn.Module):
    """Sparse semantic perception module: three conv units on the concatenated multi-scale features."""

    def __init__(self, in_channel: int = 64, out_channel: int = 64) -> None:
        super().__init__()
        self.block1 = conv_bn_relu_block(in_channel, out_channel)
        self.block2 = conv_bn_relu_block(out_channel, out_channel)
        self.block3 = conv_bn_relu_block(out_channel, out_channel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block3(self.block2(self.block1(x)))


class DSRM(nn.Module):
    """Dense scene reconstruction module: four densely connected conv units at full resolution."""

    def __init__(self, in_channel: int = 32, out_channel: int = 32) -> None:
        super().__init__()
        self.block1 = conv_bn_relu_block(in_channel, out_channel)
        self.block2 = conv_bn_relu_block(2 * in_channel, out_channel)
        self.block3 = conv_bn_relu_block(3 * in_channel, out_channel)
        self.block4 = conv_bn_relu_block(4 * in_channel, out_channel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.block1(x)
        x2 = self.block2(torch.cat([x, x1], dim=1))
        x3 = self.block3(torch.cat([x, x1, x2], dim=1))
        return self.block4(torch.cat([x, x1, x2, x3], dim=1))


def _up(x: torch.Tensor, factor: int) -> torch.Tensor:
    return F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=True)


class S2P2(nn.Module):
    """Semantic / binary / boundary prediction heads on the 1/4-scale semantic features."""

    def __init__(self, feature: int = 64, n_classes: int = 9) -> None:
        super().__init__()
        self.binary_conv1 = ConvBNReLU(feature, feature // 4, kernel_size=1)
        self.binary_conv2 = nn.Conv2d(feature // 4, 2, 3, padding=1)
        self.semantic_conv1 = ConvBNReLU(feature, feature, kernel_size=1)
        self.semantic_conv2 = nn.Conv2d(feature, n_classes, 3, padding=1)
        # Present in the official checkpoint but unused by its forward pass; kept so loading is strict.
        self.boundary_conv1 = ConvBNReLU(feature * 2, feature, kernel_size=1)
        self.boundary_conv2 = nn.Conv2d(feature, 2, 3, padding=1)
        self.boundary_conv = nn.Sequential(
            nn.Conv2d(feature * 2, feature, 1),
            nn.BatchNorm2d(feature),
            nn.ReLU6(inplace=True),
            nn.Conv2d(feature, 2, 3, padding=1),
        )

    def _semantic(self, feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        binary = self.binary_conv2(self.binary_conv1(feat))
        # exp(b1) / sum(exp(b)) as a softmax: same value, no overflow in half precision.
        foreground = torch.softmax(binary, dim=1)[:, 1:2]
        feat_semantic = self.semantic_conv1(_up(feat * foreground, 2))
        return _up(self.semantic_conv2(feat_semantic), 2), binary, feat_semantic

    def forward(self, feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        semantic, binary, feat_semantic = self._semantic(feat)
        boundary = self.boundary_conv(torch.cat([feat_semantic, _up(feat, 2)], dim=1))
        return semantic, _up(binary, 4), _up(boundary, 2)

    def semantic(self, feat: torch.Tensor) -> torch.Tensor:
        """The semantic logits only (the binary head gates them; the boundary head is skipped)."""
        return self._semantic(feat)[0]
