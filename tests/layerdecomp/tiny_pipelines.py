"""Tiny seeded diffusers pipelines built in code (no download): SD 1.x, SD 2.x, SDXL, pixel DDPM.

Each builder returns a pipeline with random weights small enough for a 2-core CPU; tests save them
with ``save_pretrained`` and load them back through :func:`layerdecomp.models.load_model`, so the
real loading path runs offline. :func:`ldm_state_dict` writes the SD 1.x pipeline in the original
LDM key layout, for ``from_single_file``.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    DDPMPipeline,
    DDPMScheduler,
    PNDMScheduler,
    StableDiffusionPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
    UNet2DModel,
)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

HIDDEN = 32
LAYERS_PER_BLOCK = 2


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP byte-to-unicode table (the base vocabulary of a byte-level BPE)."""
    bs = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), 256)]
    cs = list(bs)
    extra = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + extra)
            extra += 1
    return dict(zip(bs, map(chr, cs), strict=True))


def tokenizer(workdir: Path) -> CLIPTokenizer:
    """A CLIP tokenizer over a byte-level vocabulary with a handful of merges, written offline."""
    workdir.mkdir(parents=True, exist_ok=True)
    chars = list(_bytes_to_unicode().values())
    merges = [("c", "a"), ("ca", "t</w>"), ("d", "o"), ("do", "g</w>")]
    tokens = [*chars, *(c + "</w>" for c in chars), *("".join(m) for m in merges)]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {token: i for i, token in enumerate(dict.fromkeys(tokens))}
    (workdir / "vocab.json").write_text(json.dumps(vocab))
    lines = ["#version: 0.2", *(" ".join(m) for m in merges)]
    (workdir / "merges.txt").write_text("\n".join(lines) + "\n")
    return CLIPTokenizer(
        str(workdir / "vocab.json"), str(workdir / "merges.txt"), model_max_length=77
    )


def _text_config(tok: CLIPTokenizer, projection_dim: int = HIDDEN) -> CLIPTextConfig:
    return CLIPTextConfig(
        vocab_size=len(tok),
        hidden_size=HIDDEN,
        intermediate_size=37,
        num_attention_heads=4,
        num_hidden_layers=2,
        max_position_embeddings=77,
        projection_dim=projection_dim,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )


def _vae() -> AutoencoderKL:
    return AutoencoderKL(
        block_out_channels=(8, 16),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        latent_channels=4,
        norm_num_groups=8,
        layers_per_block=LAYERS_PER_BLOCK,
        sample_size=16,
    )


def sd_pipeline(workdir: Path, prediction_type: str = "epsilon") -> StableDiffusionPipeline:
    """SD 1.x (``epsilon``) or SD 2.x (``v_prediction``, linear projections) with random weights."""
    torch.manual_seed(0)
    v2 = prediction_type == "v_prediction"
    unet = UNet2DConditionModel(
        block_out_channels=(8, 16),
        layers_per_block=LAYERS_PER_BLOCK,
        sample_size=8,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=HIDDEN,
        attention_head_dim=(2, 4) if v2 else 2,
        use_linear_projection=v2,
        norm_num_groups=8,
    )
    vae = _vae()
    tok = tokenizer(workdir / "tokenizer-src")
    text_encoder = CLIPTextModel(_text_config(tok))
    common = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
    common.update(steps_offset=1, set_alpha_to_one=False, prediction_type=prediction_type)
    if v2:  # SD 2.x ships DDIM; SD 1.x ships PNDM (the backend converts either to DDIM)
        scheduler = DDIMScheduler(clip_sample=False, **common)
    else:
        scheduler = PNDMScheduler(skip_prk_steps=True, **common)
    return StableDiffusionPipeline(
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tok,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def sdxl_pipeline(workdir: Path) -> StableDiffusionXLPipeline:
    """SDXL: two text encoders (the second with projection), pooled embeddings and time ids."""
    torch.manual_seed(0)
    time_dim, projection = 8, HIDDEN
    unet = UNet2DConditionModel(
        block_out_channels=(8, 16),
        layers_per_block=LAYERS_PER_BLOCK,
        sample_size=8,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=time_dim,
        transformer_layers_per_block=(1, 2),
        projection_class_embeddings_input_dim=6 * time_dim + projection,
        cross_attention_dim=2 * HIDDEN,
        norm_num_groups=8,
    )
    vae = _vae()
    tok = tokenizer(workdir / "tokenizer-src")
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        steps_offset=1,
        set_alpha_to_one=False,
        clip_sample=False,
        timestep_spacing="leading",
    )
    return StableDiffusionXLPipeline(
        unet=unet,
        vae=vae,
        text_encoder=CLIPTextModel(_text_config(tok)),
        text_encoder_2=CLIPTextModelWithProjection(_text_config(tok, projection)),
        tokenizer=tok,
        tokenizer_2=tok,
        scheduler=scheduler,
    )


def pixel_pipeline() -> DDPMPipeline:
    """An unconditional pixel-space DDPM (UNet2DModel), like ``google/ddpm-cifar10-32``."""
    torch.manual_seed(0)
    unet = UNet2DModel(
        sample_size=16,
        in_channels=3,
        out_channels=3,
        block_out_channels=(8, 16),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D"),
        norm_num_groups=8,
    )
    return DDPMPipeline(unet=unet, scheduler=DDPMScheduler(num_train_timesteps=1000))


# ---------------------------------------------------------------- original (LDM) key layout


def _unet_to_ldm(state: dict, config) -> dict:
    n, per = len(config.block_out_channels), config.layers_per_block
    renames = [
        ("time_embedding.linear_1", "time_embed.0"),
        ("time_embedding.linear_2", "time_embed.2"),
        ("conv_in", "input_blocks.0.0"),
        ("conv_norm_out", "out.0"),
        ("conv_out", "out.2"),
        ("mid_block.resnets.0.", "middle_block.0."),
        ("mid_block.attentions.0.", "middle_block.1."),
        ("mid_block.resnets.1.", "middle_block.2."),
    ]
    for i in range(n):
        for j in range(per):
            renames.append(
                (f"down_blocks.{i}.resnets.{j}.", f"input_blocks.{i * (per + 1) + j + 1}.0.")
            )
            renames.append(
                (f"down_blocks.{i}.attentions.{j}.", f"input_blocks.{i * (per + 1) + j + 1}.1.")
            )
        renames.append(
            (f"down_blocks.{i}.downsamplers.0.conv.", f"input_blocks.{(i + 1) * (per + 1)}.0.op.")
        )
        up_has_attention = "CrossAttn" in config.up_block_types[i]
        for j in range(per + 1):
            renames.append((f"up_blocks.{i}.resnets.{j}.", f"output_blocks.{i * (per + 1) + j}.0."))
            renames.append(
                (f"up_blocks.{i}.attentions.{j}.", f"output_blocks.{i * (per + 1) + j}.1.")
            )
        slot = 2 if up_has_attention else 1
        renames.append(
            (f"up_blocks.{i}.upsamplers.0.", f"output_blocks.{i * (per + 1) + per}.{slot}.")
        )
    resnet_parts = [
        ("norm1", "in_layers.0"),
        ("conv1", "in_layers.2"),
        ("norm2", "out_layers.0"),
        ("conv2", "out_layers.3"),
        ("time_emb_proj", "emb_layers.1"),
        ("conv_shortcut", "skip_connection"),
    ]
    out = {}
    for key, value in state.items():
        new = key
        if "resnets" in key:
            for old, part in resnet_parts:
                new = new.replace(f".{old}.", f".{part}.")
        for old, prefix in renames:
            if new.startswith(old):
                new = prefix + new[len(old) :]
                break
        out["model.diffusion_model." + new] = value
    return out


def _vae_to_ldm(state: dict, config) -> dict:
    n = len(config.block_out_channels)
    renames = [
        ("encoder.mid_block.attentions.0.", "encoder.mid.attn_1."),
        ("decoder.mid_block.attentions.0.", "decoder.mid.attn_1."),
        ("encoder.conv_norm_out", "encoder.norm_out"),
        ("decoder.conv_norm_out", "decoder.norm_out"),
    ]
    for part in ("encoder", "decoder"):
        for k in range(2):
            renames.append((f"{part}.mid_block.resnets.{k}.", f"{part}.mid.block_{k + 1}."))
    for i in range(n):
        renames.append((f"encoder.down_blocks.{i}.resnets.", f"encoder.down.{i}.block."))
        renames.append(
            (f"encoder.down_blocks.{i}.downsamplers.0.", f"encoder.down.{i}.downsample.")
        )
        renames.append((f"decoder.up_blocks.{i}.resnets.", f"decoder.up.{n - 1 - i}.block."))
        renames.append(
            (f"decoder.up_blocks.{i}.upsamplers.0.", f"decoder.up.{n - 1 - i}.upsample.")
        )
    attention = {
        "group_norm": "norm",
        "to_q": "q",
        "to_k": "k",
        "to_v": "v",
        "to_out.0": "proj_out",
    }
    out = {}
    for key, value in state.items():
        new = key.replace("conv_shortcut", "nin_shortcut")
        for old, prefix in renames:
            if new.startswith(old):
                new = prefix + new[len(old) :]
                break
        if ".attn_1." in new:
            head, _, tail = new.partition(".attn_1.")
            name, _, kind = tail.rpartition(".")
            new = f"{head}.attn_1.{attention[name]}.{kind}"
            if kind == "weight" and name != "group_norm":
                value = value.reshape(*value.shape, 1, 1)
        out["first_stage_model." + new] = value
    return out


def ldm_state_dict(pipe: StableDiffusionPipeline) -> dict[str, torch.Tensor]:
    """The SD 1.x pipeline's UNet, VAE and CLIP text encoder in the original checkpoint layout."""
    state = {}
    state.update(_unet_to_ldm(pipe.unet.state_dict(), pipe.unet.config))
    state.update(_vae_to_ldm(pipe.vae.state_dict(), pipe.vae.config))
    for key, value in pipe.text_encoder.state_dict().items():
        # transformers ≥ 5.6 flattened CLIPTextModel; the original layout keeps ``text_model.``
        key = key if key.startswith("text_model.") else "text_model." + key
        state["cond_stage_model.transformer." + key] = value
    return {k: v.contiguous() for k, v in state.items()}
