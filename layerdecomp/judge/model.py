"""The judge: a small CNN with three heads that names an image's emoji, texture family and colour.

It is trained on ground-truth composites of :mod:`layerdecomp.data` (see
:mod:`layerdecomp.judge.train`) and scores *generated* images: ``predict`` returns the labels it
sees, ``accuracy`` compares them with the labels a caption asked for. Weights are a safetensors
file next to a ``config.json`` (architecture, labels, training record); the shipped judge lives in
``layerdecomp/weights/judge``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes
from torch import nn

from ..data.emoji import EMOJI
from ..data.textures import COLOURS, FAMILIES
from ..io import write_atomically

ATTRIBUTES: tuple[str, ...] = ("emoji", "texture", "colour")
"""The judged attributes, in a fixed order (a :class:`~layerdecomp.data.Composite` field each)."""

LABELS: dict[str, tuple[str, ...]] = {
    "emoji": EMOJI,
    "texture": FAMILIES,
    "colour": tuple(COLOURS),
}
"""Each attribute's classes: all 64 emoji, the texture families, the named colours."""

WIDTHS: tuple[int, ...] = (24, 32, 64, 128)
"""Default channel widths of the four convolution stages."""

SIZE = 64
"""The side the network sees; other sizes are resized to it (see :func:`to_input`)."""

SHIPPED_DIR = Path(__file__).resolve().parent.parent / "weights" / "judge"
WEIGHTS_FILE = "judge.safetensors"
CONFIG_FILE = "config.json"
_BATCH = 256


def _block(inputs: int, outputs: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(inputs, outputs, 3, stride, 1, bias=False),
        nn.BatchNorm2d(outputs),
        nn.ReLU(inplace=True),
    )


class JudgeNet(nn.Module):
    """A strided stem and three conv stages (max-pooled), global average and max pooling (an
    object covers part of the image: the maximum keeps what the average dilutes), three heads.

    Args:
        widths: Channels of the stem and the three stages (the last is used twice).
        classes: Number of classes per attribute, in :data:`ATTRIBUTES` order.
    """

    def __init__(
        self, widths: Sequence[int] = WIDTHS, classes: Sequence[int] | None = None
    ) -> None:
        super().__init__()
        a, b, c, d = widths
        classes = [len(LABELS[k]) for k in ATTRIBUTES] if classes is None else list(classes)
        self.trunk = nn.Sequential(
            _block(3, a, stride=2),
            _block(a, b),
            nn.MaxPool2d(2),
            _block(b, c),
            nn.MaxPool2d(2),
            _block(c, d),
            nn.MaxPool2d(2),
            _block(d, d),
        )
        self.heads = nn.ModuleDict(
            {k: nn.Linear(2 * d, n) for k, n in zip(ATTRIBUTES, classes, strict=True)}
        )

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Logits per attribute for ``images``: ``(N, 3, H, W)`` floats in [0, 1]."""
        maps = self.trunk(images * 2 - 1)
        features = torch.cat([maps.mean((2, 3)), maps.amax((2, 3))], 1)
        return {k: head(features) for k, head in self.heads.items()}


def check_images(images: Any) -> np.ndarray:
    """Validate a batch of images: uint8 ``(N, H, W, 3)``, N >= 1, H and W >= 8.

    Args:
        images: A numpy array, a uint8 torch tensor, or a sequence of equal-sized ``(H, W, 3)``
            uint8 arrays (or RGB PIL images).

    Returns:
        The batch as a uint8 numpy array.

    Raises:
        ValueError: With one line saying what was expected and what came.
    """
    if isinstance(images, torch.Tensor):
        images = images.detach().cpu().numpy()
    try:
        array = np.asarray(images)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"images: expected uint8 (N, H, W, 3) arrays ({exc})") from None
    if array.dtype != np.uint8:
        raise ValueError(
            f"images: expected dtype uint8 (values 0..255), got {array.dtype}; convert floats in "
            "[0, 1] with (x * 255).round().astype(np.uint8)"
        )
    if array.ndim != 4 or array.shape[-1] != 3 or array.shape[0] < 1:
        hint = "; add a batch axis with images[None]" if array.ndim == 3 else ""
        raise ValueError(f"images: expected shape (N, H, W, 3), got {tuple(array.shape)}{hint}")
    if min(array.shape[1:3]) < 8:
        raise ValueError(f"images: need H and W >= 8, got {array.shape[1]}x{array.shape[2]}")
    return array


def to_input(images: np.ndarray, size: int = SIZE) -> torch.Tensor:
    """uint8 ``(N, H, W, 3)`` → float ``(N, 3, size, size)`` in [0, 1].

    Larger images are shrunk by area averaging (a box filter: exact for integer factors), smaller
    ones enlarged bilinearly.
    """
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0
    if x.shape[-2:] == (size, size):
        return x
    if min(x.shape[-2:]) >= size:
        return nn.functional.interpolate(x, size=(size, size), mode="area")
    return nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


class Judge:
    """A trained :class:`JudgeNet` with its labels: predicts and scores attributes of images.

    Args:
        net: The network (put in eval mode).
        config: Its ``config.json`` content: ``widths``, ``size``, ``labels`` and the training
            record (kept as is).
    """

    def __init__(self, net: JudgeNet, config: Mapping[str, Any]) -> None:
        self.net = net.eval()
        self.config = dict(config)
        self.labels: dict[str, tuple[str, ...]] = {
            k: tuple(v) for k, v in self.config["labels"].items()
        }
        self.size = int(self.config.get("size", SIZE))

    @classmethod
    def create(cls, widths: Sequence[int] = WIDTHS, seed: int = 0) -> Judge:
        """A fresh, untrained judge over :data:`LABELS` (initialised from ``seed``)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = JudgeNet(widths)
        labels = {k: list(LABELS[k]) for k in ATTRIBUTES}
        return cls(net, {"widths": list(widths), "size": SIZE, "labels": labels})

    @classmethod
    def load(cls, path: str | os.PathLike | None = None) -> Judge:
        """Load a judge from a folder holding ``judge.safetensors`` and ``config.json``.

        Args:
            path: The folder; ``None`` is the shipped judge (``layerdecomp/weights/judge``).

        Returns:
            The judge, in eval mode on CPU.

        Raises:
            FileNotFoundError: If a file is missing.
            ValueError: If the config or the weights do not fit together.
        """
        folder = SHIPPED_DIR if path is None else Path(path)
        for name in (CONFIG_FILE, WEIGHTS_FILE):
            if not (folder / name).is_file():
                raise FileNotFoundError(
                    f"judge {str(folder)!r}: no {name} (train one with "
                    "python -m layerdecomp.judge --out DIR)"
                )
        try:
            config = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
            labels = config["labels"]
            net = JudgeNet(config["widths"], [len(labels[k]) for k in ATTRIBUTES])
            net.load_state_dict(load_file(folder / WEIGHTS_FILE))
        except Exception as exc:  # a bad JSON, a missing key, a shape mismatch, a corrupt file
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ValueError(
                f"judge {str(folder)!r}: unreadable, or config and weights do not fit ({first})"
            ) from None
        return cls(net, config)

    def save(self, folder: str | os.PathLike, card: str | None = None) -> Path:
        """Write ``judge.safetensors`` (float32) and ``config.json`` (and ``JUDGE_CARD.md``).

        The files are written atomically, the config last.

        Args:
            folder: The output folder (created).
            card: Markdown text for ``JUDGE_CARD.md``; ``None`` writes none.

        Returns:
            The folder.
        """
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().float().contiguous() for k, v in self.net.state_dict().items()}
        text = json.dumps(self.config, indent=1, ensure_ascii=False) + "\n"
        data = safetensors_bytes(state)
        files = [(folder / WEIGHTS_FILE, lambda p: p.write_bytes(data))]
        if card is not None:
            files.append((folder / "JUDGE_CARD.md", lambda p: p.write_text(card, "utf-8")))
        files.append((folder / CONFIG_FILE, lambda p: p.write_text(text, "utf-8")))
        write_atomically(files)
        return folder

    @torch.no_grad()
    def logits(self, images: Any) -> dict[str, torch.Tensor]:
        """Logits per attribute, ``(N, classes)`` each, for uint8 ``(N, H, W, 3)`` images.

        Raises:
            ValueError: For a batch of the wrong shape or dtype.
        """
        array = check_images(images)
        self.net.eval()
        chunks = [
            self.net(to_input(array[i : i + _BATCH], self.size))
            for i in range(0, len(array), _BATCH)
        ]
        return {k: torch.cat([c[k] for c in chunks]) for k in ATTRIBUTES}

    def predict(self, images: Any) -> dict[str, list[str]]:
        """The most likely label per attribute and image.

        Args:
            images: uint8 ``(N, H, W, 3)`` RGB images (any size; resized to the judge's).

        Returns:
            ``{"emoji": [...], "texture": [...], "colour": [...]}``, N labels each (an emoji
            character, a texture family, a colour name, as in a
            :class:`~layerdecomp.data.Composite`).

        Raises:
            ValueError: For a batch of the wrong shape or dtype.
        """
        logits = self.logits(images)
        return {k: [self.labels[k][i] for i in logits[k].argmax(1).tolist()] for k in ATTRIBUTES}

    def accuracy(self, images: Any, truth: Mapping[str, Sequence[str]]) -> dict[str, float]:
        """The fraction of images whose predicted label equals the true one, per attribute.

        Args:
            images: uint8 ``(N, H, W, 3)`` RGB images.
            truth: Attribute → N true labels, for any of :data:`ATTRIBUTES` (at least one).

        Returns:
            Attribute → accuracy in [0, 1], for the attributes of ``truth``.

        Raises:
            ValueError: For bad images, an unknown attribute, a label the judge does not know,
                or a label list whose length is not N.
        """
        array = check_images(images)
        unknown = [k for k in truth if k not in ATTRIBUTES]
        if unknown or not truth:
            raise ValueError(
                f"truth: expected labels for some of {', '.join(ATTRIBUTES)}, got {list(truth)}"
            )
        for k, labels in truth.items():
            if len(labels) != len(array):
                raise ValueError(f"truth[{k!r}]: {len(labels)} labels for {len(array)} images")
            strange = sorted({str(v) for v in labels} - set(self.labels[k]))
            if strange:
                raise ValueError(f"truth[{k!r}]: unknown label(s) {', '.join(strange[:5])}")
        predicted = self.predict(array)
        return {
            k: float(np.mean([p == t for p, t in zip(predicted[k], truth[k], strict=True)]))
            for k in truth
        }


__all__ = ["ATTRIBUTES", "LABELS", "SHIPPED_DIR", "Judge", "JudgeNet", "check_images"]
