"""Build the SD-format components (VAE, UNet, CLIP text encoder, tokenizer, DDIM) from a config."""

from __future__ import annotations

from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from layerdecomp.training.config import TextConfig, TrainConfig, UNetConfig, VAEConfig
from layerdecomp.training.tokenizer import build_tokenizer

SD_SCHEDULER = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "clip_sample": False,
    "set_alpha_to_one": False,
    "steps_offset": 1,
    "prediction_type": "epsilon",
}
"""Stable Diffusion 1.x's noise schedule, as a DDIMScheduler config."""


def make_vae(cfg: VAEConfig, size: int) -> AutoencoderKL:
    """An AutoencoderKL with one down/up block per entry of ``block_out_channels``.

    Args:
        cfg: The VAE config (downsampling factor ``2 ** (len(block_out_channels) - 1)``).
        size: Image side in pixels.

    Returns:
        The randomly initialised VAE.
    """
    n = len(cfg.block_out_channels)
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * n,
        up_block_types=("UpDecoderBlock2D",) * n,
        block_out_channels=cfg.block_out_channels,
        layers_per_block=cfg.layers_per_block,
        latent_channels=cfg.latent_channels,
        norm_num_groups=cfg.norm_num_groups,
        sample_size=size,
    )


def make_text_encoder(cfg: TextConfig, tokenizer: CLIPTokenizer) -> CLIPTextModel:
    """A small CLIP text transformer sized to the tokenizer.

    Args:
        cfg: The text config.
        tokenizer: The tokenizer (vocabulary size, special tokens, maximum length).

    Returns:
        The randomly initialised text encoder.
    """
    config = CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_hidden_layers,
        num_attention_heads=cfg.num_attention_heads,
        max_position_embeddings=cfg.max_length,
        projection_dim=cfg.hidden_size,
        hidden_act="quick_gelu",
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return CLIPTextModel(config)


def make_unet(
    cfg: UNetConfig, latent_channels: int, latent_size: int, cross_attention_dim: int
) -> UNet2DConditionModel:
    """A UNet2DConditionModel: cross-attention at every level but the lowest.

    With ``cfg.addition_embed_type = "text"`` the UNet also pools the text embedding into its
    time embedding (diffusers' ``TextTimeEmbedding``), a global path that conditions colour and
    texture quickly; the standard SD pipelines drive it unchanged.

    Args:
        cfg: The UNet config.
        latent_channels: The VAE's latent channels.
        latent_size: The latent side (image side over the VAE factor).
        cross_attention_dim: The text encoder's hidden size.

    Returns:
        The randomly initialised UNet.
    """
    n = len(cfg.block_out_channels)
    down = ("CrossAttnDownBlock2D",) * (n - 1) + ("DownBlock2D",)
    up = ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * (n - 1)
    return UNet2DConditionModel(
        sample_size=latent_size,
        in_channels=latent_channels,
        out_channels=latent_channels,
        down_block_types=down,
        up_block_types=up,
        block_out_channels=cfg.block_out_channels,
        layers_per_block=cfg.layers_per_block,
        cross_attention_dim=cross_attention_dim,
        attention_head_dim=cfg.attention_head_dim,
        norm_num_groups=cfg.norm_num_groups,
        addition_embed_type=cfg.addition_embed_type or None,
        addition_embed_type_num_heads=max(1, cross_attention_dim // 32),
    )


def make_scheduler() -> DDIMScheduler:
    """DDIM with Stable Diffusion's scaled-linear schedule (ε-prediction)."""
    return DDIMScheduler(**SD_SCHEDULER)


def make_components(config: TrainConfig) -> dict:
    """All five components of an SD pipeline, randomly initialised (seed with torch first).

    Args:
        config: The run's config.

    Returns:
        ``{"vae", "unet", "text_encoder", "tokenizer", "scheduler"}``.
    """
    tokenizer = build_tokenizer(config.text.max_length)
    factor = 2 ** (len(config.vae.block_out_channels) - 1)
    if config.data.size % (factor * 2 ** (len(config.unet.block_out_channels) - 1)):
        raise ValueError(f"image size {config.data.size} does not fit the VAE and UNet levels")
    return {
        "vae": make_vae(config.vae, config.data.size),
        "text_encoder": make_text_encoder(config.text, tokenizer),
        "tokenizer": tokenizer,
        "unet": make_unet(
            config.unet,
            config.vae.latent_channels,
            config.data.size // factor,
            config.text.hidden_size,
        ),
        "scheduler": make_scheduler(),
    }


def make_pipeline(components: dict) -> StableDiffusionPipeline:
    """A StableDiffusionPipeline without safety checker or feature extractor.

    Args:
        components: The output of :func:`make_components`.

    Returns:
        The pipeline.
    """
    return StableDiffusionPipeline(
        **components, safety_checker=None, feature_extractor=None, requires_safety_checker=False
    )
