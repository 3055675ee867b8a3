"""Training the judge on ground-truth composites, with augmentations that mimic generated images.

Generated images are blurrier, noisier and less regular than the composites they imitate, so every
training batch goes through kornia augmentations: a horizontal flip, a small affine warp, a slight
jitter of brightness, contrast and saturation (no hue: small enough to keep the named colours
apart), Gaussian blur and Gaussian noise. JPEG compression (``RandomJPEG``) was left out: generated
images are not JPEG files, and on one CPU thread it cost 1.7 ms per image even at p = 0.2, a
quarter of a training step. The held-out record is taken on clean
composites of the ``heldout`` split (new arrangements of the training emoji, disjoint seeds).
"""

from __future__ import annotations

import math
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import kornia.augmentation as K
import numpy as np
import torch
from torch import nn

from ..data.composites import make_composite
from .model import ATTRIBUTES, SIZE, WIDTHS, Judge


@dataclass
class JudgeRecipe:
    """What a judge training run does (recorded in ``config.json`` under ``training``).

    Attributes:
        n: Training composites (``train`` split, indices ``0 .. n-1``).
        minutes: Wall-clock budget of the optimisation (rendering excluded); ``None``: no limit.
        steps: Optimisation steps; ``None``: as many as ``minutes`` allows. One of the two is
            needed; with both, training stops at whichever comes first.
        batch: Composites per step.
        lr: Peak AdamW learning rate (linear warm-up over 3 % of the run, then cosine decay).
        weight_decay: AdamW weight decay.
        label_smoothing: Cross-entropy label smoothing.
        widths: The network's channel widths.
        seed: Seed of the data (composites' base seed), initialisation, order and augmentation.
        eval_n: Held-out composites measured at the end (``heldout`` split, ``0 .. eval_n-1``).
        threads: Torch threads (``None``: leave as is).
    """

    n: int = 12000
    minutes: float | None = 7.0
    steps: int | None = None
    batch: int = 32
    lr: float = 3e-3
    weight_decay: float = 0.01
    label_smoothing: float = 0.05
    widths: Sequence[int] = field(default_factory=lambda: list(WIDTHS))
    seed: int = 0
    eval_n: int = 1024
    threads: int | None = 1

    def __post_init__(self) -> None:
        if self.minutes is None and self.steps is None:
            raise ValueError("judge training needs minutes or steps (or both)")
        if self.n < 1 or self.batch < 1 or self.eval_n < 1:
            raise ValueError(
                f"need n, batch, eval_n >= 1, got {self.n}, {self.batch}, {self.eval_n}"
            )
        if (self.minutes is not None and self.minutes <= 0) or (
            self.steps is not None and self.steps < 1
        ):
            raise ValueError(f"need minutes > 0 and steps >= 1, got {self.minutes}, {self.steps}")


def render(split: str, n: int, seed: int = 0, start: int = 0) -> tuple[np.ndarray, dict]:
    """Composites ``start .. start+n-1`` of ``split`` as a batch and their labels.

    Returns:
        uint8 ``(n, 64, 64, 3)`` images and ``{"emoji": [...], "texture": [...],
        "colour": [...]}`` (the composites' labels).
    """
    samples = [make_composite(start + i, split, SIZE, seed) for i in range(n)]  # type: ignore[arg-type]
    images = np.stack([s.image for s in samples])
    return images, {k: [getattr(s, k) for s in samples] for k in ATTRIBUTES}


def augmentation() -> K.AugmentationSequential:
    """The training augmentation, on float ``(N, 3, H, W)`` batches in [0, 1]."""
    return K.AugmentationSequential(
        K.RandomHorizontalFlip(),
        K.RandomAffine(
            degrees=8, translate=(0.08, 0.08), scale=(0.9, 1.1), padding_mode="reflection", p=0.7
        ),
        K.ColorJiggle(brightness=0.08, contrast=0.1, saturation=0.1, p=0.7),
        K.RandomGaussianBlur((5, 5), (0.1, 1.4), p=0.6),
        K.RandomGaussianNoise(std=0.03, p=0.5),
    )


def _hardware() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        names = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        names = []
    for line in names:
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return f"CPU {cpu}, {torch.get_num_threads()} torch thread(s), torch {torch.__version__}"


def _schedule(progress: float, lr: float) -> float:
    warm = 0.03
    if progress < warm:
        return lr * (progress / warm + 0.01)
    return lr * 0.5 * (1 + math.cos(math.pi * min((progress - warm) / (1 - warm), 1.0)))


def _targets(labels: dict, judge: Judge) -> dict[str, torch.Tensor]:
    index = {k: {label: i for i, label in enumerate(judge.labels[k])} for k in ATTRIBUTES}
    return {k: torch.tensor([index[k][v] for v in labels[k]]) for k in ATTRIBUTES}


def train_judge(
    recipe: JudgeRecipe, log: Callable[[str], None] = lambda line: None
) -> tuple[Judge, dict]:
    """Train a judge on ``train`` composites and measure it on clean ``heldout`` ones.

    Args:
        recipe: The run's settings.
        log: Receives one line per phase and every 250 steps.

    Returns:
        The trained judge (its ``config["training"]`` holds the record) and the record:
        the recipe, steps, minutes per phase, final losses, held-out accuracy per attribute.
    """
    previous = torch.get_num_threads()
    if recipe.threads is not None:
        torch.set_num_threads(recipe.threads)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(recipe.seed)
            return _train(recipe, log)
    finally:
        torch.set_num_threads(previous)


def _train(recipe: JudgeRecipe, log: Callable[[str], None]) -> tuple[Judge, dict]:
    started = time.perf_counter()
    images, labels = render("train", recipe.n, recipe.seed)
    judge = Judge.create(recipe.widths, recipe.seed)
    targets = _targets(labels, judge)
    data = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    render_minutes = (time.perf_counter() - started) / 60
    log(f"rendered {recipe.n} train composites in {render_minutes:.1f} min")

    net = judge.net.train().to(memory_format=torch.channels_last)  # faster convs on CPU
    optimizer = torch.optim.AdamW(net.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    augment = augmentation()
    order = torch.Generator().manual_seed(recipe.seed)
    budget = None if recipe.minutes is None else recipe.minutes * 60
    losses: list[float] = []
    permutation, cursor, step = torch.randperm(len(data), generator=order), 0, 0
    start = time.perf_counter()
    while True:
        elapsed = time.perf_counter() - start
        progress = max(
            step / recipe.steps if recipe.steps is not None else 0.0,
            elapsed / budget if budget is not None else 0.0,
        )
        if progress >= 1.0:
            break
        if cursor + recipe.batch > len(data) and cursor > 0:
            permutation, cursor = torch.randperm(len(data), generator=order), 0
        rows = permutation[cursor : cursor + recipe.batch]
        cursor += recipe.batch
        with torch.no_grad():
            x = augment(data[rows].float() / 255.0).clamp(0, 1)
        x = x.contiguous(memory_format=torch.channels_last)
        logits = net(x)
        loss = sum(
            nn.functional.cross_entropy(
                logits[k], targets[k][rows], label_smoothing=recipe.label_smoothing
            )
            for k in ATTRIBUTES
        )
        if not torch.isfinite(loss):
            raise FloatingPointError(f"judge training: loss is {loss.item()} at step {step}")
        for group in optimizer.param_groups:
            group["lr"] = _schedule(progress, recipe.lr)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        step += 1
        if step % 250 == 0:
            recent = float(np.mean(losses[-250:]))
            log(f"step {step}  loss {recent:.3f}  {(time.perf_counter() - start) / 60:.1f} min")
    train_minutes = (time.perf_counter() - start) / 60
    net.to(memory_format=torch.contiguous_format).eval()  # as it will be loaded

    held_images, held_labels = render("heldout", recipe.eval_n, recipe.seed)
    accuracy = judge.accuracy(held_images, held_labels)
    record = {
        "recipe": {**asdict(recipe), "widths": list(recipe.widths)},
        "steps": step,
        "epochs": round(step * recipe.batch / recipe.n, 2),
        "render_minutes": round(render_minutes, 2),
        "train_minutes": round(train_minutes, 2),
        "total_minutes": round((time.perf_counter() - started) / 60, 2),
        "final_loss": round(float(np.mean(losses[-50:])), 4),
        "heldout": {
            "split": "heldout",
            "n": recipe.eval_n,
            "seed": recipe.seed,
            "accuracy": {k: round(v, 4) for k, v in accuracy.items()},
        },
        "parameters": sum(p.numel() for p in net.parameters()),
        "hardware": _hardware(),
    }
    judge.config["training"] = record
    log("held-out accuracy " + " ".join(f"{k}={v:.3f}" for k, v in accuracy.items()))
    return judge, record


__all__ = ["JudgeRecipe", "augmentation", "render", "train_judge"]
