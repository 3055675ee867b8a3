"""A tiny open_clip CLIP (ViT image tower) with seeded random weights, built in code or saved."""

from __future__ import annotations

import json
from pathlib import Path

import torch

TINY_CLIP = {
    "embed_dim": 16,
    "vision_cfg": {
        "image_size": 32,
        "layers": 3,
        "width": 32,
        "patch_size": 8,
        "head_width": 16,
        "mlp_ratio": 2.0,
    },
    "text_cfg": {"context_length": 8, "vocab_size": 64, "width": 16, "heads": 2, "layers": 1},
}


def tiny_clip(seed: int = 0):
    """``open_clip.model.CLIP`` with the tiny config (global RNG state left untouched)."""
    import open_clip

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = open_clip.model.CLIP(**TINY_CLIP)
    return model.eval().requires_grad_(False)


def save_clip_folder(folder: Path, seed: int = 0) -> Path:
    """An open_clip folder: ``open_clip_config.json`` and ``open_clip_model.safetensors``."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    config = {"model_cfg": TINY_CLIP, "preprocess_cfg": {}}
    (folder / "open_clip_config.json").write_text(json.dumps(config))
    state = {k: v.contiguous() for k, v in tiny_clip(seed).state_dict().items()}
    save_file(state, str(folder / "open_clip_model.safetensors"))
    return folder
