"""FLOPs of the GPU suite's end-to-end runs, and the time they take at a GPU's peak: the floor
that no compilation can beat.

The calls a run makes do not depend on the architecture: this runs each task once on the tiny
SD 1.x pipeline (``inpaint_speed.build("tiny")``, CPU) with counters on the UNet's forward
(samples per call) and the VAE's encode and decode (images), then prices every call at the
real architecture's FLOPs per sample (``direction_flops.py``'s meta-device count; the VAE
decoder and encoder of SD/SDXL likewise). The decomposition runs every mask update (``tol = 0``),
as the suite's 512² and 1024² runs did (NFE 99 and 98).

Floors: the FLOPs over the dense tensor peak of an H100 SXM / H200 (NVIDIA's figures: 989 TFLOPS
in float16/bfloat16, 495 in TF32; the SDXL VAE runs in float32, counted at the TF32 peak).
Measured runs reach some fraction of it; the table says how far a target is from the floor.

    python benchmarks/task_flops.py
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import torch
from diffusers import AutoencoderKL

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _gpu_calls as calls  # noqa: E402
from _config_args import (  # noqa: E402
    add_config_arguments,
    add_refused,
    config_overrides,
    parse_config,
)
from _gpu_report import print_table  # noqa: E402
from decode_memory import VAE  # noqa: E402
from direction_flops import META, MODELS, flops  # noqa: E402
from inpaint_speed import _inputs, build  # noqa: E402

from layerdecomp.tasks.decompose import DecomposeConfig, decompose_image  # noqa: E402

PEAK_HALF, PEAK_TF32 = 989e12, 495e12
"""Dense tensor-core FLOPS of an H100 SXM (and H200) in float16/bfloat16 and in TF32."""


def call_counts(task: str, **overrides) -> dict[str, int]:
    """UNet samples (forward), VAE images encoded and decoded by one run of ``task``
    (``inpaint``: 20 steps × K = 5; ``decompose``: the defaults, every update) on the tiny
    pipeline (``overrides``: decomposition options); ``nfe`` is what the run reports."""
    torch.manual_seed(0)
    backend = build("tiny", torch.device("cpu"), torch.float32)
    counts: Counter = Counter()
    unet, vae = backend.unet, backend.vae
    forward, encode, decode = unet.forward, vae.encode, vae.decode

    def counted(name, fn):
        def call(x, *args, **kwargs):
            counts[name] += len(x)
            return fn(x, *args, **kwargs)

        return call

    unet.forward = counted("forward", forward)
    vae.encode, vae.decode = counted("encode", encode), counted("decode", decode)
    image, mask = _inputs(64)
    if task == "inpaint":
        counts["nfe"] = calls.inpaint_run(backend, image, mask, calls.inpaint_config(20, 5))
    else:
        options = {"tol": 0.0, **overrides}
        layers = decompose_image(backend, image, "a cat", "a lawn", disable=True, **options)
        counts["nfe"] = layers.nfe
    return dict(counts)


def per_image_flops(model: str) -> dict[str, float]:
    """FLOPs of one sample's forward, one decode and one encode at the model's native size."""
    net, call, shape = MODELS[model]()
    with META:
        x = torch.randn(shape)
        vae = AutoencoderKL(**VAE).eval()
        z = torch.randn(1, 4, shape[-2], shape[-1])
        pixels = torch.randn(1, 3, 8 * shape[-2], 8 * shape[-1])
    with torch.no_grad():
        return {
            "forward": flops(lambda: call(net.eval(), x)),
            "decode": flops(lambda: vae.decode(z).sample),
            "encode": flops(lambda: vae.encode(pixels).latent_dist.mean),
        }


def rows(runs: list[tuple[str, str, bool]], **overrides) -> list[list[str]]:
    """(task, model, VAE in float32) → a row: calls, TFLOPs, the floors at the peaks."""
    out, cached = [], {}
    for task, model, vae_fp32 in runs:
        counts = cached.setdefault(task, call_counts(task, **overrides))
        cost = per_image_flops(model)
        unet = counts["forward"] * cost["forward"]
        vae = counts.get("decode", 0) * cost["decode"] + counts.get("encode", 0) * cost["encode"]
        floor = unet / PEAK_HALF + vae / (PEAK_TF32 if vae_fp32 else PEAK_HALF)
        out.append(
            [
                task,
                model,
                str(counts["nfe"]),
                str(counts["forward"]),
                f"{counts.get('decode', 0)} / {counts.get('encode', 0)}",
                f"{unet / 1e12:.0f}",
                f"{vae / 1e12:.0f}",
                f"{floor:.2f}",
                f"{2 * floor:.2f}",
            ]
        )
    return out


RUNS = [("inpaint", "sd15", False), ("decompose", "sd15", False), ("decompose", "sdxl", True)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="", help="task:model[:fp32],... (default: the suite's)")
    add_refused(parser, "runs", "the decomposition's runs; the table's rows are --rows")
    engine_options = add_config_arguments(parser, DecomposeConfig, only=("select_after",))
    args = parser.parse_args(argv)
    parse_config(parser, DecomposeConfig, args, engine_options)  # its bounds
    overrides = config_overrides(args, engine_options)
    runs = RUNS
    if args.rows:
        runs = [
            (p[0], p[1], p[2:] == ["fp32"]) for p in (r.split(":") for r in args.rows.split(","))
        ]
    head = ["run", "model", "NFE", "UNet samples", "VAE images (decoded / encoded)",
            "UNet TFLOP", "VAE TFLOP", "s at peak", "s at half peak"]  # fmt: skip
    print(f"# torch {torch.__version__}; peaks {PEAK_HALF / 1e12:.0f} (fp16/bf16) and "
          f"{PEAK_TF32 / 1e12:.0f} (TF32) TFLOPS")  # fmt: skip
    print_table(head, rows(runs, **overrides))


if __name__ == "__main__":
    main()
