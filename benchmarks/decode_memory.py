"""Peak memory and time of the layer engine's decode batch, in one call and in slices.

The engine decodes its L·R·K samples together (30 at the defaults); ``LatentBackend.decode``
cuts a batch into slices of at most ``decode_pixels`` output pixels. This decodes ``--batch``
random latents of a ``--side``² image with the SD / SDXL VAE architecture (random weights, built
on the device) once per budget, and prints a table: peak working memory (``_memory.peak_bytes``),
bytes per decoded pixel, seconds (GPU: CUDA events) and the ratios to the one-call row.

    python benchmarks/decode_memory.py                      # CPU: 12 × 256², float32
    python benchmarks/decode_memory.py --device cuda --side 512 --batch 30 --dtype float16
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from diffusers import AutoencoderKL

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _config_args import add_config_arguments, parse_placement  # noqa: E402
from _gpu_report import print_table  # noqa: E402
from _memory import describe, peak_bytes  # noqa: E402

from layerdecomp.models.base import DECODE_PIXELS, LatentBackend  # noqa: E402
from layerdecomp.models.options import ModelOptions  # noqa: E402

VAE = {  # SD 1.x/2.x and SDXL share the decoder's architecture
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
    "block_out_channels": (128, 256, 512, 512),
    "layers_per_block": 2,
    "latent_channels": 4,
}
TINY = {**VAE, "block_out_channels": (16, 32, 32, 32), "layers_per_block": 1, "norm_num_groups": 8}


class VaeCodec(LatentBackend):
    """The decode path of a latent backend around a bare VAE (no UNet, no text encoder)."""

    def __init__(self, vae: AutoencoderKL, device: torch.device):
        self.device, self.factor = device, 2 ** (len(vae.config.block_out_channels) - 1)
        self._set_vae(vae)
        self.calls: list[int] = []  # the batch of each decoder call, as observed
        decode = vae.decode
        vae.decode = lambda z: self.calls.append(len(z)) or decode(z)


def timed(fn, device: torch.device):
    """``fn`` wrapped to store its seconds in ``.seconds`` (GPU: CUDA events)."""

    def call():
        if device.type != "cuda":
            start = time.perf_counter()
            result = fn()
            call.seconds = time.perf_counter() - start
            return result
        begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        begin.record()
        result = fn()
        end.record()
        torch.cuda.synchronize(device)
        call.seconds = begin.elapsed_time(end) / 1e3
        return result

    return call


def rows(codec: VaeCodec, batch: int, side: int, budgets: list[int]) -> list[list[str]]:
    """One row per budget (0: one call): budget, images per call, MiB, B/pixel, s, ratios."""
    device = codec.device
    latent = torch.randn(batch, 4, side // codec.factor, side // codec.factor, device=device)
    pixels = batch * side * side
    out, base = [], None
    with torch.no_grad():
        codec.decode(latent[:1])  # warm-up (kernels, allocator)
        for budget in budgets:
            codec.decode_pixels = budget
            call = timed(lambda: codec.decode(latent), device)
            codec.calls.clear()
            peak = peak_bytes(call, device)
            time_s, per_call = call.seconds, max(codec.calls)
            base = base or (peak, time_s)
            out.append(
                [
                    f"{budget:,}" if budget else "one call",
                    str(per_call),
                    f"{peak / 2**20:.0f}",
                    f"{peak / pixels:.0f}",
                    f"{time_s:.2f}",
                    f"{peak / base[0]:.3f}",
                    f"{time_s / base[1]:.2f}",
                ]
            )
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    placing = add_config_arguments(
        parser,
        ModelOptions,
        only=("device", "dtype"),
        defaults={
            "device": ("cpu", "runs anywhere; --device cuda for a GPU's table"),
            "dtype": ("float32", "one precision on every device unless asked"),
        },
    )
    parser.add_argument("--side", type=int, default=256)
    parser.add_argument("--batch", type=int, default=12)
    parser.add_argument("--budgets", default=f"0,{DECODE_PIXELS},{1 << 18},{1 << 16}")
    parser.add_argument("--tiny", action="store_true", help="a miniature VAE (tests)")
    args = parser.parse_args(argv)
    device, dtype = parse_placement(parser, args, placing)
    torch.manual_seed(0)
    with device:
        vae = AutoencoderKL(**(TINY if args.tiny else VAE)).eval()
    if dtype != torch.float32:
        vae = vae.to(dtype)
    codec = VaeCodec(vae, device)
    budgets = [int(b) for b in args.budgets.split(",")]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    precision = str(dtype).removeprefix("torch.")
    print(f"# {name}, {precision}, torch {torch.__version__}, {args.batch} × {args.side}², "
          f"memory: {describe(device)}")  # fmt: skip
    head = ["pixels per call", "images per call", "peak MiB", "B / pixel", "s", "memory ratio",
            "time ratio"]  # fmt: skip
    print_table(head, rows(codec, args.batch, args.side, budgets))


if __name__ == "__main__":
    main()
