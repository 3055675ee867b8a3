"""Super-resolution error direction: decoder backprop vs VAE-Newton, time and peak memory (§4.1).

``backprop``: ``e = J_Dᵀ·Downᵀ·r`` by one decode with a graph and one backward pass through the
VAE decoder. ``vae_newton``: ``e ≈ (E(D(x̂0) + δ·Downᵀr) − E(D(x̂0)))/δ``, one decode and one
encode of a doubled batch, no graph. Both are interleaved in one run; the table shows the median
of ``--repeats`` timings of one ``constraint(x0)`` call and its peak working memory. With
``--steps`` a whole ×scale super-resolution run (Newton direction, K = ``--iters``) is timed
for each method too, with a random-weight UNet of the same config.

    python benchmarks/superres_memory.py --config tiny            # seconds on a 2-core CPU
    python benchmarks/superres_memory.py --config sd15 --size 512 # SD 1.5's VAE, fp16 on GPU
    python benchmarks/superres_memory.py --model mini --size 64   # a real model's VAE

``--model``, ``--device`` and ``--dtype`` are the model options' (:class:`ModelOptions`; no
``--model``: a random-weight VAE of ``--config``), ``--scale``, ``--steps`` and ``--iters`` the
task's (:class:`SuperresConfig`: help and bounds).

The last line is ``time_ratio=<backprop/vae_newton> memory_ratio=<backprop/vae_newton>``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from diffusers import AutoencoderKL

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import quiet_libraries  # noqa: E402
from _config_args import add_config_arguments, parse_config, parse_placement  # noqa: E402
from _memory import cpu_peak_supported, describe, peak_bytes  # noqa: E402

from layerdecomp.constraints.downsample import Downsample, measure  # noqa: E402
from layerdecomp.models.options import ModelOptions  # noqa: E402
from layerdecomp.options import configure  # noqa: E402
from layerdecomp.tasks.superres import SuperresConfig  # noqa: E402

OWN_DEFAULTS = {
    "model": (None, "a random-weight VAE of --config"),
    "steps": (None, "no whole runs, only the error direction's calls"),
}
"""The benchmark's defaults where they differ from the model's and the task's."""

CONFIGS = {
    "tiny": dict(
        block_out_channels=(32, 64),
        layers_per_block=1,
        norm_num_groups=8,
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
    ),
    "sd15": dict(  # the Stable Diffusion 1.5 VAE architecture (random weights)
        block_out_channels=(128, 256, 512, 512),
        layers_per_block=2,
        norm_num_groups=32,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
    ),
}


class VaeCodec:
    """A codec around an AutoencoderKL (latent mean × scaling factor), like the SD backend's."""

    def __init__(self, vae: AutoencoderKL):
        self.vae = vae
        self.factor = 2 ** (len(vae.config.block_out_channels) - 1)
        self.scale = float(vae.config.scaling_factor)

    def encode(self, image):
        x = image.to(self.vae.dtype)
        return self.vae.encode(x).latent_dist.mean.float() * self.scale

    def decode(self, latent):
        z = (latent / self.scale).to(self.vae.dtype)
        return self.vae.decode(z).sample.to(latent.dtype)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=sorted(CONFIGS), default="tiny")
    parser.add_argument("--size", type=int, default=64, help="high-resolution side in pixels")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=7)
    model_options = add_config_arguments(
        parser,
        ModelOptions,
        only=("model", "device", "dtype"),
        defaults={"model": OWN_DEFAULTS["model"]},
    )
    task_options = add_config_arguments(
        parser,
        SuperresConfig,
        only=("scale", "steps", "iters"),
        defaults={"steps": OWN_DEFAULTS["steps"]},
    )
    args = parser.parse_args(argv)
    quiet_libraries()
    if args.repeats < 5:
        parser.error("--repeats must be at least 5")
    if args.steps is not None and args.model is None:
        parser.error("--steps needs --model (a whole run needs a denoiser)")
    task = parse_config(parser, SuperresConfig, args, task_options)
    device, dtype = parse_placement(parser, args, model_options)
    scale = task.scale
    if device.type == "cpu" and not cpu_peak_supported():
        parser.error("peak memory on the CPU needs a writable /proc/self/clear_refs (Linux)")
    torch.manual_seed(0)
    backend = None
    if args.model is not None:  # placed as device and dtype say (auto: as parse_placement)
        model = parse_config(parser, ModelOptions, args, model_options)
        backend = model.load()
        codec, label = backend, f"model={model.model}"
    else:
        vae = AutoencoderKL(latent_channels=4, **CONFIGS[args.config])
        codec = VaeCodec(vae.to(device, dtype).eval().requires_grad_(False))
        label = f"config={args.config}"
    g = torch.Generator().manual_seed(0)
    side = args.size
    truth = torch.rand(args.batch, 3, side, side, generator=g) * 2 - 1
    y = measure(truth, scale, 0.05, g).to(device)
    latent = side // codec.factor
    x0 = torch.randn(args.batch, 4, latent, latent, generator=g).to(device)
    constraints = {
        "backprop": Downsample(y, scale, codec=codec, method="backprop"),
        "vae_newton": Downsample(y, scale, codec=codec, method="vae_newton"),
    }
    runs = {name: (lambda c=c: c(x0)) for name, c in constraints.items()}
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
    e_bp, _ = runs["backprop"]()
    e_vn, _ = runs["vae_newton"]()
    cosine = torch.nn.functional.cosine_similarity(e_bp.flatten(), e_vn.flatten(), dim=0).item()

    median = {name: statistics.median(ts) for name, ts in times.items()}
    name_dev = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"{label} device={name_dev} dtype={str(dtype).removeprefix('torch.')} "
        f"batch={args.batch} size={side} scale={scale} latent={tuple(x0.shape)} "
        f"threads={torch.get_num_threads()} repeats={args.repeats}"
    )
    print(f"memory: {describe(device)}")
    print(f"{'method':<11} {'passes':<28} {'median s':>10} {'min s':>10} {'peak MiB':>10}")
    passes = {
        "backprop": "decode + graph, 1 bwd",
        "vae_newton": "decode + encode(2B), no graph",
    }
    for name in runs:
        print(
            f"{name:<11} {passes[name]:<28} {median[name]:>10.4f} {min(times[name]):>10.4f} "
            f"{memory[name] / 2**20:>10.1f}"
        )
    print(f"cosine(e_backprop, e_vae_newton) = {cosine:.3f}")
    if args.steps is not None and backend is not None:
        from layerdecomp.io import tensor_to_image
        from layerdecomp.tasks.superres import superres

        low = tensor_to_image(y[:1].clamp(-1, 1))
        steps, iters = task.sampling.steps, task.sampling.refine.iters
        print(f"whole runs: {steps} steps, K={iters}, λ={task.sampling.refine.lam}")
        for method in constraints:
            start = time.perf_counter()
            config = configure(SuperresConfig, task, {"method": method})
            out = superres(backend, low, config=config, seed=0, disable_progress=True)
            print(
                f"  {method:<11} {time.perf_counter() - start:8.2f} s  nfe={out.nfe} "
                f"final residual={out.residuals[-1, -1, 0]:.4f}"
            )
    time_ratio = median["backprop"] / median["vae_newton"]
    memory_ratio = memory["backprop"] / max(memory["vae_newton"], 1)
    print(f"time_ratio={time_ratio:.2f} memory_ratio={memory_ratio:.2f}")


if __name__ == "__main__":
    main()
