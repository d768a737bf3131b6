"""Conversion between uint8 pixels and the [-1, 1] floats the networks read and write."""
from __future__ import annotations

import torch


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Map model outputs in [-1, 1] to uint8 pixels. (N, C, H, W) float -> (N, C, H, W) uint8."""
    return ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def from_uint8(images: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Map uint8 pixels to [-1, 1]. (N, C, H, W) uint8 -> (N, C, H, W) float."""
    return images.to(dtype) / 127.5 - 1.0
