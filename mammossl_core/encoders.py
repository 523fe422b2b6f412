"""Encoders: torchvision ResNets (paper V.B, V.D) and a small ResNet for the tiny profile.

An encoder is split into a fully-convolutional *trunk* (image -> grid of embeddings, used for whole images,
paper II.B) and a pooled *backbone* (trunk + global average pool -> one embedding, used on patches).
"""
from __future__ import annotations

import torch
import torchvision
from torch import nn
from torchvision.models.resnet import BasicBlock, ResNet

ENCODERS = ("resnet50", "resnet50x2", "resnet152", "resnet18", "tiny")


def build_resnet(name: str) -> ResNet:
    """A randomly initialised torchvision ResNet by project name (no weights are downloaded).

    ``resnet50x2`` is torchvision's ``wide_resnet50_2`` (bottleneck width doubled).
    """
    if name == "resnet50":
        return torchvision.models.resnet50(weights=None)
    if name == "resnet50x2":
        return torchvision.models.wide_resnet50_2(weights=None)
    if name == "resnet152":
        return torchvision.models.resnet152(weights=None)
    if name == "resnet18":
        return torchvision.models.resnet18(weights=None)
    raise ValueError(f"unknown encoder {name!r}; choose one of {ENCODERS}")


def _tiny_trunk() -> tuple[nn.Sequential, int]:
    """A narrow ResNet of torchvision basic blocks for the tiny profile on CPUs: 8-16-32-64 channels, one block per
    stage, total stride 8, so that it mirrors the paper's geometry at the tiny image size: a 32 px tile becomes a
    4x4 map (the paper's 96 px tile on ResNet-50: 3x3) and a 256x192 image a 32x24 grid (about 200-300 breast
    cells), at the cost per tile of a stride-32 trunk twice as wide."""

    def stage(cin: int, cout: int, stride: int) -> BasicBlock:
        down = None
        if stride != 1 or cin != cout:
            down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        return BasicBlock(cin, cout, stride, down)

    trunk = nn.Sequential(nn.Conv2d(3, 8, 5, 2, 2, bias=False), nn.BatchNorm2d(8), nn.ReLU(inplace=True),
                          nn.MaxPool2d(3, 2, 1), stage(8, 8, 1), stage(8, 16, 2), stage(16, 32, 1),
                          stage(32, 64, 1))
    return trunk, 64


def total_stride(name: str) -> int:
    """Pixels per grid cell of the trunk ``name``."""
    return 8 if name == "tiny" else 32


def build_trunk(name: str) -> tuple[nn.Sequential, int]:
    """Fully-convolutional trunk (no pooling, no classifier) and its embedding size ``m``."""
    if name == "tiny":
        return _tiny_trunk()
    net = build_resnet(name)
    m = net.fc.in_features
    trunk = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2, net.layer3, net.layer4)
    return trunk, m


class Backbone(nn.Module):
    """Trunk followed by global average pooling: ``(B, 3, H, W) -> (B, m)``."""

    def __init__(self, name: str):
        super().__init__()
        self.name = name
        self.trunk, self.dim = build_trunk(name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(x).mean((2, 3))
