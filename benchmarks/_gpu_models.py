"""Random-weight models with the real architectures for ``gpu_suite.py``, built on the device.

SD 1.5 comes from :func:`inpaint_speed.build`; SDXL base and the SD3-medium transformer are
written here from their published configs (``config.json`` of ``stabilityai/stable-diffusion-
xl-base-1.0`` and ``stabilityai/stable-diffusion-3-medium-diffusers``). Modules are constructed
under ``torch.device(device)``: their initialisation runs on the GPU, so building the 2.6 B
parameter SDXL UNet takes seconds. ``tiny=True`` gives miniatures of the same classes for the
CPU dry run. No network: tokenizers are written offline.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from types import SimpleNamespace

import torch
from diffusers import (
    AutoencoderKL,
    EulerDiscreteScheduler,
    FlowMatchEulerDiscreteScheduler,
    SD3Transformer2DModel,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)
from inpaint_speed import _tokenizer, build
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

from layerdecomp.models import from_pipeline, load_model
from solvers import Denoiser

SDXL = {
    "size": 1024,
    "unet": {
        "sample_size": 128,
        "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        "block_out_channels": (320, 640, 1280),
        "layers_per_block": 2,
        "attention_head_dim": (5, 10, 20),
        "transformer_layers_per_block": (1, 2, 10),
        "cross_attention_dim": 2048,
        "use_linear_projection": True,
        "addition_embed_type": "text_time",
        "addition_time_embed_dim": 256,
        "projection_class_embeddings_input_dim": 2816,  # 1280 pooled + 6 × 256 time ids
    },
    "vae": {
        "down_block_types": ("DownEncoderBlock2D",) * 4,
        "up_block_types": ("UpDecoderBlock2D",) * 4,
        "block_out_channels": (128, 256, 512, 512),
        "layers_per_block": 2,
        "latent_channels": 4,
        "sample_size": 1024,
        "scaling_factor": 0.13025,
        "force_upcast": True,  # the SDXL VAE overflows in float16: kept in float32
    },
    "text": {  # CLIP ViT-L/14 (penultimate layer used)
        "hidden_size": 768,
        "intermediate_size": 3072,
        "num_attention_heads": 12,
        "num_hidden_layers": 12,
        "hidden_act": "quick_gelu",
        "projection_dim": 768,
    },
    "text_2": {  # OpenCLIP ViT-bigG/14
        "hidden_size": 1280,
        "intermediate_size": 5120,
        "num_attention_heads": 20,
        "num_hidden_layers": 32,
        "hidden_act": "gelu",
        "projection_dim": 1280,
    },
}

SDXL_TINY = {
    "size": 64,
    "unet": {
        **SDXL["unet"],
        "sample_size": 8,
        "block_out_channels": (32, 64, 64),
        "layers_per_block": 1,
        "attention_head_dim": (2, 4, 4),
        "transformer_layers_per_block": (1, 1, 1),
        "cross_attention_dim": 64,
        "addition_time_embed_dim": 8,
        "projection_class_embeddings_input_dim": 32 + 6 * 8,
        "norm_num_groups": 8,
    },
    "vae": {**SDXL["vae"], "block_out_channels": (16, 32, 32, 32), "layers_per_block": 1,
            "norm_num_groups": 8, "sample_size": 64},
    "text": {**SDXL["text"], "hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 4,
             "num_hidden_layers": 2, "projection_dim": 32},
    "text_2": {**SDXL["text_2"], "hidden_size": 32, "intermediate_size": 64,
               "num_attention_heads": 4, "num_hidden_layers": 2, "projection_dim": 32},
}  # fmt: skip

SD3 = {  # the SD3-medium MMDiT (2 B parameters); 333 text tokens: 77 CLIP + 256 T5
    "size": 1024,
    "tokens": 333,
    "transformer": {
        "sample_size": 128,
        "patch_size": 2,
        "in_channels": 16,
        "out_channels": 16,
        "num_layers": 24,
        "attention_head_dim": 64,
        "num_attention_heads": 24,
        "joint_attention_dim": 4096,
        "caption_projection_dim": 1536,
        "pooled_projection_dim": 2048,
        "pos_embed_max_size": 192,
    },
}

SD3_TINY = {
    "size": 64,
    "tokens": 16,
    "transformer": {
        **SD3["transformer"],
        "sample_size": 8,
        "num_layers": 2,
        "attention_head_dim": 8,
        "num_attention_heads": 4,
        "joint_attention_dim": 32,
        "caption_projection_dim": 32,
        "pooled_projection_dim": 32,
        "pos_embed_max_size": 16,
    },
}


def sd15(device: torch.device, dtype: torch.dtype, tiny: bool):
    """The SD 1.5 architecture (UNet, VAE, CLIP text encoder) as a backend, 512² (tiny: 64²)."""
    return build("tiny" if tiny else "sd15", device, dtype)


def sdxl(device: torch.device, dtype: torch.dtype, tiny: bool):
    """The SDXL base architecture (UNet, VAE, both text encoders) as a backend, 1024²."""
    spec = SDXL_TINY if tiny else SDXL
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as folder:
        tokenizer = _tokenizer(Path(folder))

    def text_config(fields: dict) -> CLIPTextConfig:
        ids = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id}
        return CLIPTextConfig(
            vocab_size=len(tokenizer), max_position_embeddings=77, **ids, **fields
        )

    with torch.device(device):
        parts = {
            "unet": UNet2DConditionModel(**spec["unet"]),
            "vae": AutoencoderKL(**spec["vae"]),
            "text_encoder": CLIPTextModel(text_config(spec["text"])),
            "text_encoder_2": CLIPTextModelWithProjection(text_config(spec["text_2"])),
        }
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1
    )
    pipeline = StableDiffusionXLPipeline(
        **parts, tokenizer=tokenizer, tokenizer_2=tokenizer, scheduler=scheduler
    )
    return from_pipeline(pipeline, spec="sdxl (random weights)", device=device, dtype=dtype)


def sd3(device: torch.device, dtype: torch.dtype, tiny: bool):
    """The SD3-medium transformer alone with random text embeddings, as a backend-like object:
    ``transformer`` (what :func:`layerdecomp.models.compiled.compile_backend` compiles),
    ``denoiser()`` (flow prediction, x̂0 = x_t − σ·v), ``latent_shape`` and the size."""
    spec = SD3_TINY if tiny else SD3
    config = spec["transformer"]
    torch.manual_seed(0)
    with torch.device(device):
        transformer = SD3Transformer2DModel(**config).to(dtype).eval().requires_grad_(False)
        embeds = torch.randn(1, spec["tokens"], config["joint_attention_dim"], dtype=dtype)
        pooled = torch.randn(1, config["pooled_projection_dim"], dtype=dtype)

    def model_fn(x_t: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
        batch = x_t.shape[0]
        if not isinstance(t, torch.Tensor):  # a fill, not a host-to-device copy (no sync)
            t = torch.full((), t, device=x_t.device)
        timestep = t.to(torch.float32).reshape(-1).expand(batch)
        return transformer(
            hidden_states=x_t.to(dtype),
            timestep=timestep,
            encoder_hidden_states=embeds.expand(batch, -1, -1),
            pooled_projections=pooled.expand(batch, -1),
            return_dict=False,
        )[0].to(x_t.dtype)

    scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0)
    side = spec["size"] // 8
    return SimpleNamespace(
        transformer=transformer,
        pipeline=SimpleNamespace(components={"transformer": transformer}),
        device=torch.device(device),
        size=spec["size"],
        denoiser=lambda *args, **kwargs: Denoiser(model_fn, scheduler, "flow"),
        latent_shape=lambda batch, *_: (batch, config["in_channels"], side, side),
    )


def mini(device: torch.device, dtype: torch.dtype, tiny: bool):
    """The embedded model (the same at any scale)."""
    del tiny
    return load_model("mini", device=device, dtype=dtype)


BUILDERS = {"sd15": sd15, "sdxl": sdxl, "sd3": sd3, "mini": mini}
"""Model name → ``builder(device, dtype, tiny)``."""
