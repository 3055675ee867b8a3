"""Regenerate the example composites and their truth: ``python examples/make_examples.py``.

Three composites of the ``heldout`` split (new arrangements of the training emoji, never seen in
training), generated directly at 128x128 (no upscaling), one two-object composite of the same
split (``layerdecomp.data.pairs``: for three layers), and ``examples.json`` listing each image
with its prompts (``fg`` is a list, front first, for the two-object one) and its truth.

The truth goes to ``truth/``: each object's layer as RGBA (its alpha is the object's exact
alpha, ``alpha = A / 255``), front first, and the complete background, hidden part included;
``image = round(alpha·fg + (1 − alpha)·bg)``, composited front to back. The script is
deterministic: ``tests/examples/test_make_examples.py`` checks that it gives back the committed
files.
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


def _truth(out: Path, stem: str, layers, background) -> dict[str, object]:
    """Write the RGBA layers (front first) and the background of ``stem`` under ``out/truth``."""
    (out / "truth").mkdir(exist_ok=True)
    names = []
    for number, layer in enumerate(layers, 1):
        name = f"truth/{stem}_layer{number}.png"
        Image.fromarray(layer, "RGBA").save(out / name)
        names.append(name)
    Image.fromarray(background).save(out / f"truth/{stem}_background.png")
    return {"layers": names, "background": f"truth/{stem}_background.png"}


def main(out: Path = Path(__file__).parent) -> None:
    """Write the PNGs, their truth and ``examples.json`` into ``out``."""
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
                "truth": _truth(out, stem, [c.fg], c.bg),
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
                "truth": _truth(out, stem, list(pair.fgs), pair.bg),
            }
        )
    (out / "examples.json").write_text(json.dumps(records, indent=2) + "\n")


if __name__ == "__main__":
    main()
