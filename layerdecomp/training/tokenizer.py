"""A word-level CLIP tokenizer whose vocabulary covers every caption of the composites.

The vocabulary follows CLIP's layout (the 256 byte-level symbols, the same with ``</w>``, the
merged symbols, then ``<|startoftext|>`` and ``<|endoftext|>``), and the merges are learned by
plain byte-pair encoding on the caption words until every word is a single token. Any other text
still tokenizes (into byte-level symbols), so the tokenizer never needs an unknown token.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from transformers import CLIPTokenizer

from layerdecomp.data.emoji import EMOJI, emoji_prompt
from layerdecomp.data.textures import COLOURS, FAMILIES, texture_caption

BOS, EOS = "<|startoftext|>", "<|endoftext|>"
_WORD = re.compile(r"[^\W\d_]+|\d|[^\s\w]+")


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible map from bytes to printable characters."""
    keep = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    chars, extra = {}, 0
    for b in range(256):
        if b in keep:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return chars


def caption_words() -> list[str]:
    """Every word of every caption the composites can produce (all splits), sorted.

    Returns:
        Lower-case words, e.g. ``["a", "alarm", "an", ...]``.
    """
    texts = [emoji_prompt(e) for e in EMOJI]
    texts += [texture_caption(f, c) for f in FAMILIES for c in COLOURS]
    texts += ["a", "an", "on", "and"]
    return sorted({w for text in texts for w in _WORD.findall(text.lower())})


def learn_merges(words: Iterable[str]) -> list[tuple[str, str]]:
    """Byte-pair merges (most frequent pair first, ties by order) until each word is one symbol.

    Args:
        words: Lower-case ASCII words.

    Returns:
        The merges in rank order.
    """
    byte_map = _bytes_to_unicode()
    segmented = {}
    for word in words:
        chars = [byte_map[b] for b in word.encode("utf-8")]
        segmented[word] = [*chars[:-1], chars[-1] + "</w>"]
    merges: list[tuple[str, str]] = []
    while True:
        pairs = Counter(p for s in segmented.values() for p in zip(s[:-1], s[1:], strict=True))
        if not pairs:
            return merges
        best = min(pairs, key=lambda p: (-pairs[p], p))
        merges.append(best)
        for word, symbols in segmented.items():
            out, i = [], 0
            while i < len(symbols):
                if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == best:
                    out.append(symbols[i] + symbols[i + 1])
                    i += 2
                else:
                    out.append(symbols[i])
                    i += 1
            segmented[word] = out


def build_tokenizer(max_length: int = 16, words: Iterable[str] | None = None) -> CLIPTokenizer:
    """A CLIP tokenizer with a word-level vocabulary for the composite captions.

    Args:
        max_length: ``model_max_length`` (the pipelines pad and truncate prompts to it).
        words: The words to cover (default: :func:`caption_words`).

    Returns:
        The tokenizer (save it with ``save_pretrained``).
    """
    merges = learn_merges(caption_words() if words is None else words)
    symbols = list(_bytes_to_unicode().values())
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges] + [BOS, EOS]
    vocab = {token: i for i, token in enumerate(dict.fromkeys(tokens))}
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=max_length)


def save_tokenizer(tokenizer: CLIPTokenizer, directory: str | Path) -> None:
    """``save_pretrained`` plus the classic ``vocab.json``/``merges.txt`` (for transformers 4).

    Args:
        tokenizer: A tokenizer from :func:`build_tokenizer`.
        directory: The ``tokenizer`` folder of a pipeline.
    """
    directory = Path(directory)
    tokenizer.save_pretrained(directory)
    model = json.loads(tokenizer.backend_tokenizer.to_str())["model"]
    (directory / "vocab.json").write_text(json.dumps(model["vocab"], ensure_ascii=False))
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    (directory / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
