"""The emoji foregrounds: a fixed list, their names, and their rendering with Noto Color Emoji.

The emoji are drawn with Pillow from Debian's ``fonts-noto-color-emoji`` bitmap font (it only
renders at size 109), cropped to their alpha bounding box and resized with an antialiasing filter,
so every foreground carries a real alpha channel.
"""

from __future__ import annotations

import os
import unicodedata
from functools import cache, lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

FONT_PATH = "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf"
"""Where Debian's ``fonts-noto-color-emoji`` puts it (``$LAYERDECOMP_EMOJI_FONT`` overrides)."""

FONT_SIZE = 109
"""The only size the bitmap (CBDT) font renders at."""

EMOJI: tuple[str, ...] = tuple(
    # animals
    "🐱🐶🐭🐰🦊🐻🐼🐯🦁🐮🐷🐸🐵🐔🐧🐦🦉🐢🐙🐠🐳🦋🐞🦀"
    # fruit and vegetables
    "🍎🍊🍋🍌🍉🍇🍓🍒🍑🍍🥑🥕🍄🥦🍐🌶"
    # objects and plants
    "🎈🎁🔑🔔💡🎸🚗🚀🌻🌵🌲🌷👑🍩🍕🍔⏰⚽🌙🔥❄🌈⛵🧸"
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
        ``$LAYERDECOMP_EMOJI_FONT`` if set, else :data:`FONT_PATH`.

    Raises:
        FileNotFoundError: If the font is missing; the message names the apt package.
    """
    path = os.environ.get("LAYERDECOMP_EMOJI_FONT", FONT_PATH)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"Colour emoji font not found at {path!r}. Install Debian's 'fonts-noto-color-emoji' "
            "package (apt-get install -y fonts-noto-color-emoji) or point LAYERDECOMP_EMOJI_FONT "
            "at NotoColorEmoji.ttf."
        )
    return path


@lru_cache(maxsize=1)
def _font() -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(font_path(), FONT_SIZE)


@cache
def render_emoji(emoji: str) -> Image.Image:
    """Render one emoji at the font's native size, cropped to its alpha bounding box.

    Args:
        emoji: One code point.

    Returns:
        An RGBA image (about 128 px on its longer side).

    Raises:
        FileNotFoundError: If the font is missing.
        ValueError: If the emoji renders empty (the font lacks it).
    """
    font = _font()
    left, top, right, bottom = font.getbbox(emoji)
    canvas = Image.new("RGBA", (right - left + 8, bottom - top + 8), (0, 0, 0, 0))
    ImageDraw.Draw(canvas).text((4 - left, 4 - top), emoji, font=font, embedded_color=True)
    box = canvas.getchannel("A").getbbox()
    if box is None:
        raise ValueError(f"emoji {emoji!r} ({emoji_name(emoji)}) renders empty with {font.path}")
    return canvas.crop(box)


def emoji_rgba(emoji: str, longest: int) -> np.ndarray:
    """An emoji resized (antialiased, premultiplied) so that its longer side is ``longest`` px.

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
    return rgba
