"""The clip_style constraint on a tiny random-weight CLIP: tokens, Gram, error, loading, errors."""

import json

import pytest
import torch

from layerdecomp.constraints import ClipStyle, build, load_clip
from layerdecomp.constraints.clip_style import clip_preprocess, clip_tokens, gram
from layerdecomp.errors import ModelSpecError

from .tiny_clip import TINY_CLIP, save_clip_folder, tiny_clip

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def clip():
    return tiny_clip()


def _images(seed, batch=1, side=20):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, side, side, generator=g) * 2 - 1


def test_tokens_and_gram(clip):
    pixels = clip_preprocess(_images(0, 2), (32, 32))
    assert pixels.shape == (2, 3, 32, 32)
    tokens = clip_tokens(clip, pixels, 2)
    assert tokens.shape == (2, 1 + 16, 32)  # CLS + (32/8)² patches, width 32
    earlier = clip_tokens(clip.visual, pixels, 0)
    assert not torch.allclose(tokens, earlier)
    g = gram(tokens[:, 1:])
    assert g.shape == (2, 32, 32) and torch.allclose(g, g.transpose(1, 2))
    f = tokens[0, 1:]
    assert torch.allclose(g[0], f.T @ f / 16, atol=1e-5)
    with pytest.raises(ValueError, match="block"):
        clip_tokens(clip, pixels, 3)


def _hand_run(visual, pixels, block):
    """The ViT by hand: patch conv, class token, positions, ln_pre, blocks 0..block (no ln_post)."""
    x = visual.conv1(pixels).flatten(2).transpose(1, 2)
    cls = visual.class_embedding.expand(x.shape[0], 1, -1)
    x = visual.ln_pre(torch.cat([cls, x], dim=1) + visual.positional_embedding)
    batch_first = visual.transformer.batch_first
    x = x if batch_first else x.transpose(0, 1)
    for layer in visual.transformer.resblocks[: block + 1]:
        x = layer(x)
    return x if batch_first else x.transpose(0, 1)


@pytest.mark.parametrize("block", [0, 1, 2])
def test_tokens_match_a_hand_run_of_the_blocks(clip, block):
    pixels = clip_preprocess(_images(6, 2), (32, 32))
    calls = []
    hooks = [
        layer.register_forward_hook(lambda *_, i=i: calls.append(i))
        for i, layer in enumerate(clip.visual.transformer.resblocks)
    ]
    try:
        tokens = clip_tokens(clip, pixels, block)
    finally:
        for hook in hooks:
            hook.remove()
    assert calls == list(range(block + 1))  # stops after the block: no later work, no backward
    torch.testing.assert_close(tokens, _hand_run(clip.visual, pixels, block), rtol=0, atol=1e-6)


def test_preprocess_uses_the_openai_clip_normalisation():
    image = torch.zeros(1, 3, 32, 32)  # mid-grey: 0.5 after mapping to [0, 1]
    pixels = clip_preprocess(image, (32, 32))
    mean = torch.tensor([0.48145466, 0.4578275, 0.40821073])
    std = torch.tensor([0.26862954, 0.26130258, 0.27577711])
    torch.testing.assert_close(pixels[0, :, 0, 0], (0.5 - mean) / std)


def test_error_is_minus_the_gradient_and_vanishes_at_the_reference(clip):
    reference = _images(1, side=32)
    constraint = build("clip_style", reference=reference, clip=clip)
    assert constraint.size == (32, 32) and constraint.block == 2
    e, residual = constraint(reference.clone())
    assert residual.item() < 1e-3 and e.abs().max() < 1e-3
    x0 = _images(2, 2, side=32).requires_grad_(True)
    loss = 0.5 * (constraint.gram(x0) - constraint.reference_gram).pow(2).sum()
    (grad,) = torch.autograd.grad(loss, x0)
    e, residual = constraint(x0.detach())
    assert torch.allclose(e, -grad, atol=1e-5) and residual.shape == (2,)
    assert (constraint(x0.detach() + 1e-3 * e)[1] < residual).all()


def test_codec_and_reference_of_another_size(clip):
    class Double:
        factor = 2

        def encode(self, image):
            return torch.nn.functional.avg_pool2d(image, 2)

        def decode(self, latent):
            return torch.nn.functional.interpolate(latent, scale_factor=2.0, mode="nearest")

    constraint = ClipStyle(_images(3, side=50), clip=clip, codec=Double())
    e, residual = constraint(torch.randn(1, 3, 8, 8))
    assert e.shape == (1, 3, 8, 8) and torch.isfinite(e).all() and residual.item() > 0


def test_load_clip_from_a_folder_and_a_checkpoint(tmp_path):
    folder = save_clip_folder(tmp_path / "clip")
    visual = load_clip(folder)
    reference = tiny_clip().visual
    pixels = clip_preprocess(_images(4), (32, 32))
    assert torch.allclose(clip_tokens(visual, pixels, 2), clip_tokens(reference, pixels, 2))
    assert not any(p.requires_grad for p in visual.parameters())
    (tmp_path / "tiny-vit.json").write_text(json.dumps(TINY_CLIP))
    checkpoint = folder / "open_clip_model.safetensors"
    visual = load_clip(checkpoint, tmp_path / "tiny-vit.json")
    assert torch.allclose(clip_tokens(visual, pixels, 2), clip_tokens(reference, pixels, 2))
    constraint = ClipStyle(_images(5), clip=str(folder))
    assert constraint.size == (32, 32)


def test_missing_weights_offline_is_one_clear_error(monkeypatch, tmp_path):
    """Offline (the flag the hub library reads; set at its import) with an empty cache."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(ModelSpecError, match="'openai'.*offline.*--clip PATH"):
        load_clip("openai", "ViT-B-16")


@pytest.mark.parametrize(
    "spec, model, message",
    [
        ("nope", "ViT-B-16", "not a pretrained tag of ViT-B-16 \\(tags: openai"),
        ("openai", "ViT-Nope", "--clip-model 'ViT-Nope': not an open_clip architecture"),
    ],
)
def test_bad_specs(spec, model, message):
    with pytest.raises(ModelSpecError, match=message):
        load_clip(spec, model)


def test_non_vit_towers_are_refused():
    with pytest.raises(ValueError, match="not an open_clip VisionTransformer"):
        ClipStyle(_images(0), clip=torch.nn.Linear(2, 2))
