"""One inexact-Newton iteration vs one gradient (DPS) iteration on the same UNet (§3's claim).

Newton: h ≈ J·e from two forward passes without a graph. Gradient: Jᵀe from one forward pass with a
graph and one backward pass (weights frozen, gradient w.r.t. x_t only). The two are interleaved in
one run; the table shows the median of ``--repeats`` timings and the peak working memory of each.
The paper reports 2× less compute and 2.5× less memory for Newton.

    python benchmarks/newton_vs_gradient.py --config tiny          # seconds on a 2-core CPU
    python benchmarks/newton_vs_gradient.py --config sd15          # SD 1.5 UNet, fp16 on GPU

``--device`` and ``--dtype`` are the model options' (:class:`ModelOptions`: ``auto`` is a GPU
when there is one, in float16, else the CPU in float32).

The last line is ``time_ratio=<gradient/newton> memory_ratio=<gradient/newton>``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from diffusers import DDIMScheduler, UNet2DConditionModel
from diffusers.utils import logging as diffusers_logging

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _config_args import add_config_arguments, parse_placement  # noqa: E402
from _memory import cpu_peak_supported, describe, peak_bytes  # noqa: E402

from layerdecomp.models.options import ModelOptions  # noqa: E402
from solvers import Denoiser, gradient, newton  # noqa: E402

CONFIGS = {
    "tiny": dict(
        unet=dict(
            sample_size=32,
            in_channels=4,
            out_channels=4,
            layers_per_block=1,
            block_out_channels=(32, 64),
            cross_attention_dim=32,
            attention_head_dim=8,
            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
            norm_num_groups=8,
        ),
        latent=32,
        tokens=77,
    ),
    "sd15": dict(  # the Stable Diffusion 1.5 UNet architecture (random weights)
        unet=dict(
            sample_size=64,
            in_channels=4,
            out_channels=4,
            layers_per_block=2,
            block_out_channels=(320, 640, 1280, 1280),
            cross_attention_dim=768,
            attention_head_dim=8,
            down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
            up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        ),
        latent=64,
        tokens=77,
    ),
}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=sorted(CONFIGS), default="tiny")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batch", type=int, default=1)
    placing = add_config_arguments(parser, ModelOptions, only=("device", "dtype"))
    args = parser.parse_args(argv)
    if args.repeats < 5:
        parser.error("--repeats must be at least 5")
    device, dtype = parse_placement(parser, args, placing)
    if device.type == "cpu" and not cpu_peak_supported():
        parser.error("peak memory on the CPU needs a writable /proc/self/clear_refs (Linux)")
    config = CONFIGS[args.config]
    diffusers_logging.set_verbosity_error()
    torch.manual_seed(0)
    unet = UNet2DConditionModel(**config["unet"]).to(device, dtype).eval().requires_grad_(False)
    unet.set_default_attn_processor()  # the same attention path for both directions
    scheduler = DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    g = torch.Generator(device).manual_seed(0)
    shape = (args.batch, 4, config["latent"], config["latent"])
    cond = torch.randn(
        args.batch,
        config["tokens"],
        config["unet"]["cross_attention_dim"],
        generator=g,
        device=device,
        dtype=dtype,
    )
    denoiser = Denoiser(lambda x, t: unet(x, t, encoder_hidden_states=cond).sample, scheduler)
    x_t = torch.randn(shape, generator=g, device=device, dtype=dtype)
    e = torch.randn(shape, generator=g, device=device, dtype=dtype)
    t = 501

    runs = {
        "newton": lambda: newton(denoiser, x_t, t, e),
        "gradient": lambda: gradient(denoiser, x_t, t, e),
    }
    for fn in runs.values():  # warm-up
        fn()
    sync(device)
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.repeats):  # interleaved
        for name, fn in runs.items():
            sync(device)
            start = time.perf_counter()
            fn()
            sync(device)
            times[name].append(time.perf_counter() - start)
    memory = {name: peak_bytes(fn, device) for name, fn in runs.items()}

    median = {name: statistics.median(ts) for name, ts in times.items()}
    name_dev = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"config={args.config} device={name_dev} dtype={str(dtype).removeprefix('torch.')} "
        f"batch={args.batch} latent={tuple(shape)} threads={torch.get_num_threads()} "
        f"repeats={args.repeats}"
    )
    print(f"memory: {describe(device)}")
    print(f"{'direction':<10} {'passes':<22} {'median s':>10} {'min s':>10} {'peak MiB':>10}")
    passes = {"newton": "2 forward, no graph", "gradient": "1 fwd + graph, 1 bwd"}
    for name in runs:
        print(
            f"{name:<10} {passes[name]:<22} {median[name]:>10.4f} {min(times[name]):>10.4f} "
            f"{memory[name] / 2**20:>10.1f}"
        )
    time_ratio = median["gradient"] / median["newton"]
    memory_ratio = memory["gradient"] / max(memory["newton"], 1)
    print(f"time_ratio={time_ratio:.2f} memory_ratio={memory_ratio:.2f}")


if __name__ == "__main__":
    main()
