"""The training set: composites rendered on every core, tokenized, cached in the run folder.

The composites of a run are a pure function of its ``[data]`` config, so the first call renders
them (one process per core with ``workers = 0``) and writes ``data.safetensors`` beside the
checkpoint; a resumed call reads them back instead of rendering again.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from transformers import CLIPTokenizer

from layerdecomp.data.composites import Composite, make_composite
from layerdecomp.data.pairs import PairComposite, make_pair
from layerdecomp.training.config import DataConfig

PAIR_CHOICE = 7
"""Stream id (after the data seed) of the draw that picks which training samples are pairs."""

CACHE = "data.safetensors"
"""The rendered training set inside a run's output folder."""


@dataclass
class TrainingData:
    """Pre-generated composites: uint8 images ``(N, 3, H, W)`` and caption token ids ``(N, 3, L)``
    (fg-only, bg-only, both), plus the empty caption's ids ``(L,)``."""

    images: torch.Tensor
    tokens: torch.Tensor
    empty: torch.Tensor

    def to(self, device: torch.device | str) -> TrainingData:
        """The same data on ``device`` (images stay uint8)."""
        return TrainingData(self.images.to(device), self.tokens.to(device), self.empty.to(device))


def tokenize(tokenizer: CLIPTokenizer, texts: list[str]) -> torch.Tensor:
    """Token ids exactly as the SD pipelines make them (pad and truncate to the maximum length)."""
    return tokenizer(
        texts,
        padding="max_length",
        max_length=tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    ).input_ids


def make_training_data(
    cfg: DataConfig, tokenizer: CLIPTokenizer, split: str = "train", n: int | None = None
) -> TrainingData:
    """Generate ``n`` composites of a split (default: ``cfg.num_train`` of train), tokenized."""
    n = cfg.num_train if n is None else n
    is_pair = np.random.default_rng([cfg.seed, PAIR_CHOICE]).random(n) < cfg.pairs
    jobs = [(i, bool(pair), split, cfg.size, cfg.seed) for i, pair in enumerate(is_pair)]
    workers = min(cfg.workers if cfg.workers > 0 else _cores(), max(1, n // 64))
    if workers == 1:
        samples = [_render(job) for job in jobs]
    else:  # spawn: the parent may hold threads (torch) that a fork would copy half-way
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            samples = list(pool.map(_render, jobs, chunksize=max(1, n // (8 * workers))))
    images = torch.from_numpy(np.stack([image for image, _ in samples])).permute(0, 3, 1, 2)
    texts = [t for _, captions in samples for t in captions]
    tokens = tokenize(tokenizer, texts).view(n, 3, -1)
    return TrainingData(images.contiguous(), tokens, tokenize(tokenizer, [""])[0])


def tensor_training_data(
    cfg: DataConfig, tokenizer: CLIPTokenizer, device: torch.device | str, batch: int = 4096
) -> TrainingData:
    """``cfg.num_train`` composites, the single-object ones rendered by
    :mod:`layerdecomp.data.tensor_render` on ``device`` (seeded by ``cfg.seed``), the pairs
    (``cfg.pairs`` of them) by the CPU renderer on every core; captions by table lookup."""
    from layerdecomp.data.emoji import emoji_prompt
    from layerdecomp.data.tensor_render import build_atlas, draw, render
    from layerdecomp.data.textures import COLOURS, FAMILIES, texture_caption

    n_pairs = int(round(cfg.num_train * cfg.pairs))
    n = cfg.num_train - n_pairs
    atlas = build_atlas("train", cfg.size, device)
    fg = [emoji_prompt(e) for e in atlas.pool]
    bg = [texture_caption(f, c) for f in FAMILIES for c in COLOURS]
    tables = [tokenize(tokenizer, texts).to(device) for texts in (fg, bg)]
    both = tokenize(tokenizer, [f"{a} on {b}" for a in fg for b in bg]).to(device)
    generator = torch.Generator(torch.device(device)).manual_seed(cfg.seed)
    images, tokens = [], []
    for start in range(0, n, batch):
        d = draw(atlas, min(batch, n - start), cfg.size, generator)
        images.append(render(atlas, d, cfg.size)[0])
        b = d.family * len(COLOURS) + d.colour
        ids = [tables[0][d.emoji], tables[1][b], both[d.emoji * len(bg) + b]]
        tokens.append(torch.stack(ids, 1))
    if n_pairs:
        pairs = make_training_data(replace(cfg, num_train=n_pairs, pairs=1.0), tokenizer)
        images.append(pairs.images.to(device))
        tokens.append(pairs.tokens.to(device))
    return TrainingData(torch.cat(images), torch.cat(tokens), tokenize(tokenizer, [""])[0])


def cached_training_data(cfg: DataConfig, tokenizer: CLIPTokenizer, out: Path) -> TrainingData:
    """:func:`make_training_data` for ``cfg``, read from ``out/data.safetensors`` when that file
    was written for the same config (else rendered and written there)."""
    path = out / CACHE
    key = json.dumps(asdict(cfg), sort_keys=True)
    if path.is_file():
        from safetensors import safe_open

        with safe_open(str(path), "pt") as f:
            same = (f.metadata() or {}).get("config") == key
        if same:
            t = load_file(path)
            return TrainingData(t["images"], t["tokens"], t["empty"])
    data = make_training_data(cfg, tokenizer)
    tmp = path.with_name(path.name + ".tmp")
    tensors = {"images": data.images, "tokens": data.tokens, "empty": data.empty}
    save_file(tensors, tmp, metadata={"config": key})
    tmp.replace(path)
    return data


def _cores() -> int:
    """The cores this process may use (a container's, not the host's), at most 32."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, 32))


def _render(job: tuple[int, bool, str, int, int]) -> tuple[np.ndarray, tuple[str, str, str]]:
    """One composite's image and captions (only these travel back from a worker)."""
    index, pair, split, size, seed = job
    make = make_pair if pair else make_composite
    sample = make(index, split, size, seed)  # type: ignore[arg-type]
    return sample.image, _captions(sample)


def _captions(sample: Composite | PairComposite) -> tuple[str, str, str]:
    """fg-only, bg-only and both; a pair's objects are joined with "and", front first."""
    if isinstance(sample, PairComposite):
        return " and ".join(sample.captions_fg), sample.caption_bg, sample.caption
    return sample.caption_fg, sample.caption_bg, sample.caption
