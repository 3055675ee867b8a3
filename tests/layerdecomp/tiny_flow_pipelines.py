"""Tiny seeded rectified-flow pipelines built in code (no download): Stable Diffusion 3 and Flux.

Like :mod:`tests.layerdecomp.tiny_pipelines`: random weights, small enough for a 2-core CPU,
saved by the tests with ``save_pretrained`` and loaded back through
:func:`layerdecomp.models.load_model`. The CLIP tokenizer is the byte-level one built there; the
T5 tokenizer is a word-level Unigram vocabulary built in code (``T5Tokenizer(vocab=...)``).
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import (
    AutoencoderKL,
    FlowMatchEulerDiscreteScheduler,
    FluxPipeline,
    FluxTransformer2DModel,
    SD3Transformer2DModel,
    StableDiffusion3Pipeline,
)
from transformers import (
    CLIPTextModel,
    CLIPTextModelWithProjection,
    T5Config,
    T5EncoderModel,
    T5Tokenizer,
)

from tests.layerdecomp.tiny_pipelines import HIDDEN, _text_config, tokenizer

T5_WORDS = ("a", "cat", "dog", "fox", "face", "red", "blue", "purple", "stripes", "photo")
T5_DIM = 2 * HIDDEN  # SD3 pads the two CLIP embeddings (2 × HIDDEN) to the T5 width


def t5_tokenizer() -> T5Tokenizer:
    """A T5 tokenizer over a few words (<pad>, </s>, <unk> first, as T5 has them)."""
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    vocab += [(f"▁{word}", -1.0) for word in T5_WORDS]
    return T5Tokenizer(vocab=vocab, extra_ids=0, model_max_length=512)


def t5_encoder() -> T5EncoderModel:
    """A 2-layer T5 encoder of width ``T5_DIM``."""
    config = T5Config(
        vocab_size=4 + len(T5_WORDS),
        d_model=T5_DIM,
        d_kv=8,
        d_ff=37,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
        dropout_rate=0.0,
        is_encoder_decoder=False,
        use_cache=False,
    )
    return T5EncoderModel(config)


def flow_vae() -> AutoencoderKL:
    """SD3/Flux-style VAE: no quant convs, a shift factor, 4 latent channels, factor 2."""
    return AutoencoderKL(
        block_out_channels=(8, 16),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        latent_channels=4,
        norm_num_groups=8,
        layers_per_block=1,
        sample_size=16,
        use_quant_conv=False,
        use_post_quant_conv=False,
        scaling_factor=1.5,
        shift_factor=0.1,
    )


def sd3_pipeline(workdir: Path) -> StableDiffusion3Pipeline:
    """SD3: two CLIP encoders with projection, a T5 encoder, a patch-2 MMDiT, shift 3."""
    torch.manual_seed(0)
    transformer = SD3Transformer2DModel(
        sample_size=8,
        patch_size=2,
        in_channels=4,
        out_channels=4,
        num_layers=2,
        attention_head_dim=8,
        num_attention_heads=4,
        joint_attention_dim=T5_DIM,
        caption_projection_dim=32,
        pooled_projection_dim=2 * HIDDEN,
        pos_embed_max_size=16,
    )
    tok = tokenizer(workdir / "tokenizer-src")
    return StableDiffusion3Pipeline(
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        vae=flow_vae(),
        text_encoder=CLIPTextModelWithProjection(_text_config(tok)),
        tokenizer=tok,
        text_encoder_2=CLIPTextModelWithProjection(_text_config(tok)),
        tokenizer_2=tok,
        text_encoder_3=t5_encoder(),
        tokenizer_3=t5_tokenizer(),
    )


def flux_pipeline(workdir: Path, guidance_embeds: bool = True) -> FluxPipeline:
    """Flux (dev-like with ``guidance_embeds``): CLIP pooled + T5, packed latents, dynamic shift."""
    torch.manual_seed(0)
    transformer = FluxTransformer2DModel(
        patch_size=1,
        in_channels=16,  # 4 latent channels × a 2×2 patch
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=T5_DIM,
        pooled_projection_dim=HIDDEN,
        guidance_embeds=guidance_embeds,
        axes_dims_rope=(4, 4, 8),
    )
    scheduler = FlowMatchEulerDiscreteScheduler(
        shift=3.0,
        use_dynamic_shifting=True,
        base_shift=0.5,
        max_shift=1.15,
        base_image_seq_len=256,
        max_image_seq_len=4096,
    )
    tok = tokenizer(workdir / "tokenizer-src")
    return FluxPipeline(
        transformer=transformer,
        scheduler=scheduler,
        vae=flow_vae(),
        text_encoder=CLIPTextModel(_text_config(tok)),
        tokenizer=tok,
        text_encoder_2=t5_encoder(),
        tokenizer_2=t5_tokenizer(),
    )
