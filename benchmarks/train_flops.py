"""FLOPs of one training step of a config's VAE and UNet loops, and the step time at a GPU's
peak: the floor under #24's "≤ 15 ms per UNet step".

Each loop's step (forward, loss, backward with the weights' gradients; the optimizer's and the
EMA's element-wise work is not counted) runs once on the meta device (shapes only, nothing
computed) under ``torch.utils.flop_counter``, with the config's models, batch sizes and crops.
The floor is those FLOPs at the dense bfloat16 tensor peak of an H100 SXM / H200 (NVIDIA's
figure, 989 TFLOPS, ``task_flops.PEAK_HALF``); the steps a loop could take in a minute follow.

    python benchmarks/train_flops.py --config gpu
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _gpu_report import print_table  # noqa: E402
from direction_flops import META, flops  # noqa: E402
from task_flops import PEAK_HALF  # noqa: E402

from layerdecomp.training.components import make_components  # noqa: E402
from layerdecomp.training.config import load_config  # noqa: E402


def step_flops(config_name: str, **overrides) -> dict[str, dict]:
    """Per loop: the batch and the FLOPs of one step (forward + backward, weights' gradients);
    ``overrides`` replace the config's tables or keys (as ``load_config``'s)."""
    config = load_config(config_name, **{"device": "cpu", **overrides})
    parts = make_components(config)
    vae, unet, text = (parts[k].to(META).train() for k in ("vae", "unet", "text_encoder"))
    crop, b_vae = min(config.vae.crop, config.data.size), config.vae.batch_size
    factor = 2 ** (len(config.vae.block_out_channels) - 1)
    latent = (config.vae.latent_channels, config.data.size // factor, config.data.size // factor)
    b = config.unet.batch_size

    def vae_step() -> None:
        x = torch.randn(b_vae, 3, crop, crop, device=META)
        posterior = vae.encode(x).latent_dist
        recon = vae.decode(posterior.sample()).sample
        ((recon - x).abs().mean() + posterior.kl().mean()).backward()

    def unet_step() -> None:
        z = torch.randn(b, *latent, device=META)
        t = torch.zeros(b, dtype=torch.long, device=META)
        ids = torch.zeros(b, config.text.max_length, dtype=torch.long, device=META)
        pred = unet(z, t, text(ids)[0]).sample
        torch.nn.functional.mse_loss(pred, z).backward()

    return {
        "vae": {"batch": b_vae, "size": crop, "flops": flops(vae_step)},
        "unet": {"batch": b, "size": latent[-1], "flops": flops(unet_step)},
    }


def rows(counts: dict[str, dict], peak: float = PEAK_HALF) -> list[list[str]]:
    out = []
    for loop, c in counts.items():
        seconds = c["flops"] / peak
        out.append([
            loop, str(c["batch"]), f"{c['size']}²", f"{c['flops'] / 1e9:.1f}",
            f"{1e3 * seconds:.3f}", f"{60 / seconds:,.0f}",
        ])  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="gpu", help="a bundled config's name or a TOML file")
    args = parser.parse_args(argv)
    head = ["loop", "batch", "input", "GFLOP per step", "ms at peak", "steps per minute at peak"]
    print(f"# {args.config}; torch {torch.__version__}; peak {PEAK_HALF / 1e12:.0f} TFLOPS bf16")
    print_table(head, rows(step_flops(args.config)))


if __name__ == "__main__":
    main()
