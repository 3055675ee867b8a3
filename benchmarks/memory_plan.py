"""Predicted peak memory of a decomposition per architecture, at the default and under a budget.

Each network (SD 1.5 and SDXL UNets, the SD3-medium and Flux.1 transformers) and its VAE
decoder is built on the ``meta`` device from its published config (no weights, no download),
and the working memory of one call is counted under ``FakeTensorMode``
(:func:`layerdecomp.models.memory.measure_rows` with ``fake=True``: the bytes of the tensors each
operation allocates while they are alive, no kernel runs), at one row and two: a cost per row and
a fixed part. That is the count :class:`~layerdecomp.models.memory.MemoryPlan` plans with.

The extrapolation check: the per-row cost is counted at an eighth, a quarter and a half of
the native side, fitted as ``c + a·pixels + b·pixels²`` (the text tokens, convolutions growing
with the pixels, attention scores with their square), and the fit's prediction at the native
side is compared with the count there (column ``fit error``). Attention is counted as PyTorch's
meta kernels run it (its scores materialised); flash attention on a GPU does not hold them, so
the counts over-estimate a GPU's network memory at 512² and above.

A decomposition's peak is predicted as the weights (network + VAE, in the network's precision;
text encoders excluded: they run once, before the batch) plus the larger of the network's and
the decoder's working memory for its batch: L·R·S = 2·3·5 = 30 samples at the defaults (the
network sees 60 rows with guidance). The smallest budget is the weights plus one sample's call
over :data:`~layerdecomp.models.memory.MARGIN`. These are CPU estimates: the GPU's allocator,
cuDNN/cuBLAS workspaces and the kernels' own scratch are not counted; the GPU check is pending.

    .venv/bin/python benchmarks/memory_plan.py            # the four architectures
    .venv/bin/python benchmarks/memory_plan.py --tiny     # miniatures, seconds
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch
from diffusers import (
    AutoencoderKL,
    FluxPipeline,
    FluxTransformer2DModel,
    SD3Transformer2DModel,
    UNet2DConditionModel,
)

from layerdecomp.models.memory import GIB, MARGIN, measure_rows

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _gpu_models import SD3, SDXL  # noqa: E402

SAMPLES = 30  # L·R·S of DecomposeConfig's defaults: 2 layers × 3 runs × 5 samples

SDXL_UNET = SDXL["unet"]  # stabilityai/stable-diffusion-xl-base-1.0, as the GPU suite builds it
SD3_NET = SD3["transformer"]  # the SD3-medium MMDiT
VAE = {
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
    "block_out_channels": (128, 256, 512, 512),
    "layers_per_block": 2,
}
MODELS = {  # name: (native side, network dtype, VAE dtype, latent channels, text tokens)
    "sd15": (512, torch.float16, torch.float16, 4, 77),
    "sdxl": (1024, torch.float16, torch.float32, 4, 77),  # the SDXL VAE runs in float32
    "sd3": (1024, torch.float16, torch.float16, 16, 333),
    "flux": (1024, torch.bfloat16, torch.bfloat16, 16, 512),
}
TINY = {
    "unet": {"block_out_channels": (32, 64), "layers_per_block": 1, "norm_num_groups": 8,
             "cross_attention_dim": 32, "attention_head_dim": 4,
             "down_block_types": ("CrossAttnDownBlock2D", "DownBlock2D"),
             "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D")},
    "sdxl": {"block_out_channels": (32, 64, 64), "attention_head_dim": (2, 4, 4),
             "transformer_layers_per_block": (1, 1, 1), "cross_attention_dim": 32,
             "addition_time_embed_dim": 8, "projection_class_embeddings_input_dim": 32 + 48,
             "norm_num_groups": 8, "layers_per_block": 1},
    "sd3": {"num_layers": 2, "attention_head_dim": 8, "num_attention_heads": 4,
            "joint_attention_dim": 32, "caption_projection_dim": 32, "pooled_projection_dim": 32,
            "pos_embed_max_size": 16},
    "flux": {"num_layers": 1, "num_single_layers": 1, "attention_head_dim": 8,
             "num_attention_heads": 2, "joint_attention_dim": 32, "pooled_projection_dim": 32,
             "axes_dims_rope": (2, 2, 4)},
    "vae": {"block_out_channels": (16, 32, 32, 32), "layers_per_block": 1, "norm_num_groups": 8},
}  # fmt: skip


def build(name: str, tiny: bool):
    """(network call ``call(start, stop, x)``, decoder call, network, VAE) on the meta device."""
    side, dtype, vae_dtype, channels, tokens = MODELS[name]
    small = TINY if tiny else {}
    with torch.device("meta"):
        vae_config = {**VAE, "latent_channels": channels, **small.get("vae", {})}
        vae = AutoencoderKL(**vae_config).to(vae_dtype)
        if name == "sd15":
            net = UNet2DConditionModel(**small.get("unet", {})).to(dtype)
        elif name == "sdxl":
            net = UNet2DConditionModel(**{**SDXL_UNET, **small.get("sdxl", {})}).to(dtype)
        elif name == "sd3":
            net = SD3Transformer2DModel(**{**SD3_NET, **small.get("sd3", {})}).to(dtype)
        else:
            net = FluxTransformer2DModel(guidance_embeds=True, **small.get("flux", {})).to(dtype)
    width = getattr(net.config, "cross_attention_dim", None) or net.config.joint_attention_dim

    def text(n: int, *shape: int) -> torch.Tensor:
        return torch.zeros(n, *shape, device="meta", dtype=dtype)

    def network(start: int, stop: int, x: torch.Tensor) -> torch.Tensor:
        n = stop - start
        t = torch.full((n,), 500.0, device="meta")
        if name == "sd15":
            return net(x, t, encoder_hidden_states=text(n, tokens, width)).sample
        if name == "sdxl":
            pooled = net.config.projection_class_embeddings_input_dim - 6 * (
                net.config.addition_time_embed_dim
            )
            added = {"text_embeds": text(n, pooled), "time_ids": text(n, 6)}
            return net(
                x, t, encoder_hidden_states=text(n, tokens, width), added_cond_kwargs=added
            ).sample
        pooled = text(n, net.config.pooled_projection_dim)
        if name == "sd3":
            return net(
                hidden_states=x, timestep=t, encoder_hidden_states=text(n, tokens, width),
                pooled_projections=pooled,
            )[0]  # fmt: skip
        h, w = x.shape[-2:]
        ids = torch.zeros(h * w // 4, 3, device="meta", dtype=dtype)
        return net(
            hidden_states=FluxPipeline._pack_latents(x, n, x.shape[1], h, w), timestep=t / 1000,
            guidance=t,
            pooled_projections=pooled, encoder_hidden_states=text(n, tokens, width),
            txt_ids=torch.zeros(tokens, 3, device="meta", dtype=dtype), img_ids=ids,
        )[0]  # fmt: skip

    def decoder(start: int, stop: int, z: torch.Tensor) -> torch.Tensor:
        return vae.decode(z.to(vae_dtype)).sample

    return network, decoder, net, vae


def weights(*modules: torch.nn.Module) -> int:
    return sum(p.numel() * p.element_size() for m in modules for p in m.parameters())


def count(call, channels: int, latent: int, dtype: torch.dtype):
    sample = torch.zeros(2, channels, latent, latent, device="meta", dtype=dtype)
    return measure_rows(call, sample, fake=True)


def fit_error(call, channels: int, latent: int, dtype: torch.dtype) -> tuple[float, object]:
    """The row cost at the native latent side, and the relative error of its per-row cost as
    predicted by ``c + a·p + b·p²`` fitted at an eighth, a quarter and a half of the side (p:
    latent pixels; c: the text tokens' share)."""
    sides = [latent // 8, latent // 4, latent // 2]
    costs = [float(count(call, channels, s, dtype).per_row) for s in sides]
    pixels = torch.tensor([[1.0, s * s, s**4] for s in sides], dtype=torch.float64)
    coef = torch.linalg.solve(pixels, torch.tensor(costs, dtype=torch.float64))
    full = count(call, channels, latent, dtype)
    predicted = float(coef @ torch.tensor([1.0, latent**2, latent**4], dtype=torch.float64))
    return predicted / full.per_row - 1, full


def rows(name: str, tiny: bool, guidance: float) -> list[str]:
    side, dtype, vae_dtype, channels, _ = MODELS[name]
    side = 128 if tiny else side
    latent = side // 8
    start = time.perf_counter()
    network, decoder, net, vae = build(name, tiny)
    error, net_cost = fit_error(network, channels, latent, dtype)
    dec_cost = count(decoder, channels, latent, dtype)
    resident = weights(net, vae)
    per_sample = 2 if guidance > 0 else 1
    default = resident + max(net_cost.peak(SAMPLES * per_sample), dec_cost.peak(SAMPLES))
    one = max(net_cost.peak(per_sample), dec_cost.peak(1))
    smallest = resident + one / MARGIN
    return [
        name,
        f"{side}²",
        str(dtype).removeprefix("torch."),
        f"{resident / GIB:.2f}",
        f"{net_cost.per_row / GIB:.3f}",
        f"{dec_cost.per_row / GIB:.3f}",
        f"{default / GIB:.2f}",
        f"{smallest / GIB:.2f}",
        f"{error:+.1%}",
        f"{time.perf_counter() - start:.0f}",
    ]


HEADER = [
    "model", "size", "dtype", "weights GiB", "network GiB/row", "decode GiB/row",
    "default peak GiB", "smallest budget GiB", "fit error", "count s",
]  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="miniature configs (a test)")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated")
    parser.add_argument("--guidance", type=float, default=0.0, help="CFG weight (0: default)")
    args = parser.parse_args(argv)
    print(f"# memory_plan: {platform.node()} torch {torch.__version__}; CPU counts (FakeTensor)")
    print(f"| {' | '.join(HEADER)} |")
    print(f"|{'|'.join('---' for _ in HEADER)}|")
    for name in args.models.split(","):
        print(f"| {' | '.join(rows(name, args.tiny, args.guidance))} |", flush=True)


if __name__ == "__main__":
    main()
