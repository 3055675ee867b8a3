"""The layers' shares in the engine (§4.2): their random start, a given start, normalisation, and
the EM responsibilities that the mask moves toward. Shares are (R, L, H, W): R runs, L layers
front to back (the background last), summing to 1 over L."""

from __future__ import annotations

import torch


def initial_shares(runs: int, count: int, size: tuple[int, int], generator, device) -> torch.Tensor:
    """Random shares (R, L, H, W) summing to 1: two layers draw the foreground's uniformly in
    [0.01, 0.99]; more layers draw each from the flat Dirichlet (normalised exponentials)."""
    if count == 2:
        fg = torch.rand((runs, 1, *size), generator=generator, device=device) * 0.98 + 0.01
        return torch.cat([fg, 1 - fg], 1)
    draws = torch.rand((runs, count, *size), generator=generator, device=device)
    weights = -torch.log(draws.clamp_min(1e-6))
    return normalised((weights / weights.sum(1, keepdim=True)).clamp(0.01, 0.99))


def normalised(shares: torch.Tensor) -> torch.Tensor:
    """Shares (R, L, H, W) scaled to sum to 1, the last layer taking the remainder exactly."""
    front = shares[:, :-1] / shares.sum(1, keepdim=True).clamp_min(1e-12)
    return torch.cat([front, (1 - front.sum(1, keepdim=True)).clamp_min(0)], 1)


def responsibilities(scores: torch.Tensor) -> torch.Tensor:
    """Categorical responsibilities (R, L, H, W) from the layers' log-evidence (R, L, H, W): the
    softmax; two layers: the sigmoid of the log-likelihood ratio."""
    if scores.shape[1] == 2:
        fg = torch.sigmoid(scores[:, :1] - scores[:, 1:])
        return torch.cat([fg, 1 - fg], 1)
    return normalised(torch.softmax(scores, 1))


def initial_from(init_mask: torch.Tensor, count: int, size: tuple[int, int]) -> torch.Tensor:
    """Shares (1, L, H, W) from a given start: (1, L, H, W), or for two layers the foreground's
    (1, 1, H, W); kept in [0.01, 0.99] and normalised."""
    if count == 2 and tuple(init_mask.shape) == (1, 1, *size):
        fg = init_mask.float().clamp(0.01, 0.99)
        return torch.cat([fg, 1 - fg], 1)
    if tuple(init_mask.shape) != (1, count, *size):
        raise ValueError(
            f"init_mask: expected shape {(1, count, *size)}"
            + (f" or {(1, 1, *size)}" if count == 2 else "")
            + f", got {tuple(init_mask.shape)}"
        )
    return normalised(init_mask.float().clamp(0.01, 0.99))


__all__ = ["initial_from", "initial_shares", "normalised", "responsibilities"]
