"""Argument validation shared by the solvers: one clear ``ValueError`` naming the argument."""

from __future__ import annotations

import torch


def check_tensor(name: str, value: object) -> torch.Tensor:
    """Return ``value`` if it is a floating-point tensor with a batch dimension, else raise."""
    if not isinstance(value, torch.Tensor):
        raise ValueError(f"{name}: expected a torch.Tensor, got {type(value).__name__}")
    if not value.is_floating_point():
        raise ValueError(f"{name}: expected a floating-point tensor, got {value.dtype}")
    if value.dim() < 2:
        raise ValueError(
            f"{name}: expected a batched tensor (B, ...), got shape {tuple(value.shape)}"
        )
    return value


def check_like(name: str, value: object, ref: torch.Tensor, ref_name: str) -> torch.Tensor:
    """Check that ``value`` has the shape, dtype and device of ``ref``."""
    check_tensor(name, value)
    assert isinstance(value, torch.Tensor)
    if value.shape != ref.shape:
        raise ValueError(
            f"{name}: shape {tuple(value.shape)} does not match {ref_name} {tuple(ref.shape)}"
        )
    if value.dtype != ref.dtype:
        raise ValueError(f"{name}: dtype {value.dtype} does not match {ref_name} {ref.dtype}")
    if value.device != ref.device:
        raise ValueError(f"{name}: device {value.device} does not match {ref_name} {ref.device}")
    return value


def batch_amax(x: torch.Tensor) -> torch.Tensor:
    """Per-sample max|x|, shaped to broadcast against ``x`` (B, 1, 1, ...)."""
    return x.detach().abs().flatten(1).amax(dim=1).view(-1, *([1] * (x.dim() - 1)))
