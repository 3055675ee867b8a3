"""Regenerate the example composites: ``python examples/make_examples.py``.

Three composites of the ``heldout`` split (new arrangements of the training emoji, never seen in
training), generated directly at 128x128 (no upscaling), one two-object composite of the same
split (``layerdecomp.data.pairs``: for three layers), and ``examples.json`` listing each image
with its prompts (``fg`` is a list, front first, for the two-object one).
"""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from layerdecomp.data import make_composite
from layerdecomp.data.pairs import make_pair

EXAMPLES = {"fox_stripes": 79, "rabbit_dots": 22, "apple_checks": 212}
"""File stem -> index in the heldout split (seed 0)."""

PAIRS = {"bear_mouse_stripes": 0}
"""File stem -> index of a two-object composite in the heldout split (seed 0)."""

SIZE, SEED, SPLIT = 128, 0, "heldout"


def main(out: Path = Path(__file__).parent) -> None:
    """Write the PNGs and ``examples.json`` into ``out``."""
    records = []
    for stem, index in EXAMPLES.items():
        c = make_composite(index, SPLIT, SIZE, SEED)
        Image.fromarray(c.image).save(out / f"{stem}.png")
        records.append(
            {
                "image": f"{stem}.png",
                "fg": c.caption_fg,
                "bg": c.caption_bg,
                "split": SPLIT,
                "index": index,
                "seed": SEED,
                "size": SIZE,
            }
        )
    for stem, index in PAIRS.items():
        pair = make_pair(index, SPLIT, SIZE, SEED)
        Image.fromarray(pair.image).save(out / f"{stem}.png")
        records.append(
            {
                "image": f"{stem}.png",
                "fg": list(pair.captions_fg),
                "bg": pair.caption_bg,
                "split": SPLIT,
                "index": index,
                "seed": SEED,
                "size": SIZE,
                "pair": True,
            }
        )
    (out / "examples.json").write_text(json.dumps(records, indent=2) + "\n")


if __name__ == "__main__":
    main()
