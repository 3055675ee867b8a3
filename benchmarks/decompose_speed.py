"""Speed of one layer decomposition (§4.2), and batched against sequential sample throughput.

``--config mini`` decomposes the README example (examples/examples.json's first entry) with the
embedded model; ``tiny`` and ``sd15`` build the SD 1.x architectures with random weights
(``sd15``: the real SD 1.5 UNet/VAE/CLIP at 512×512, fp16 on a GPU; goal ≤ 10 s on an H100).
Throughput: the engine draws all 2RK samples (K per layer and run, R runs; guidance doubles the
batch) in one denoiser batch; the sequential variant draws them one per layer at a time.

    python benchmarks/decompose_speed.py --config mini
    python benchmarks/decompose_speed.py --config sd15 --device cuda

``--device`` and ``--dtype`` are the model options' (:class:`ModelOptions`).

Last line: ``seconds=<s> batched_samples_per_s=<x> sequential_samples_per_s=<y> speedup=<r>``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _config_args import add_config_arguments, parse_placement  # noqa: E402
from inpaint_speed import CONFIGS, build  # noqa: E402

from layerdecomp.io import image_to_tensor  # noqa: E402
from layerdecomp.layers.engine import _Sampler  # noqa: E402
from layerdecomp.models import load_model  # noqa: E402
from layerdecomp.models.options import ModelOptions  # noqa: E402
from layerdecomp.tasks.decompose import DecomposeConfig, decompose_image  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _example() -> tuple[Image.Image, str, str]:
    entry = json.loads((ROOT / "examples" / "examples.json").read_text())[0]
    image = Image.open(ROOT / "examples" / entry["image"]).convert("RGB")
    return image, entry["fg"], entry["bg"]


def throughput(backend, image: Image.Image, config: DecomposeConfig, repeats: int):
    """Samples per second: all 2RK in one batch (as the engine draws them: K per layer and run),
    and RK batches of one sample per layer."""
    pixels = image_to_tensor(image).to(backend.device)
    sampler = _Sampler(backend, pixels, ("a", "b"), config, torch.Generator(backend.device))
    h, w = sampler.y.shape[-2:]
    n = config.samples * config.runs
    keep = (torch.rand(2 * n, 1, h, w, device=backend.device) > 0.5).float()
    pairs = [torch.stack([keep[i], keep[n + i]]) for i in range(n)]
    sampler.draw(keep)  # warm-up
    timings = {}
    for name, batches in (("batched", [keep]), ("sequential", pairs)):
        _sync(backend.device)
        start = time.perf_counter()
        for _ in range(repeats):
            for batch in batches:
                sampler.draw(batch)
        _sync(backend.device)
        timings[name] = 2 * n * repeats / (time.perf_counter() - start)
    return timings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=["mini", *sorted(CONFIGS)], default="mini")
    parser.add_argument("--repeats", type=int, default=3)
    placing = add_config_arguments(parser, ModelOptions, only=("device", "dtype"))
    args = parser.parse_args(argv)
    device, dtype = parse_placement(parser, args, placing)
    if args.config == "mini":
        backend = load_model("mini", device=device, dtype=dtype)
        image, fg, bg = _example()
    else:
        backend = build(args.config, device, dtype)
        size = CONFIGS[args.config]["size"]
        gen = torch.Generator().manual_seed(0)
        data = torch.randint(0, 256, (size, size, 3), generator=gen, dtype=torch.uint8)
        image, fg, bg = Image.fromarray(data.numpy()), "a cat", "a lawn"
    config = DecomposeConfig()

    decompose_image(backend, image, fg, bg, config=config, updates=1, disable=True)  # warm-up
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    _sync(device)
    start = time.perf_counter()
    layers = decompose_image(backend, image, fg, bg, config=config, disable=True)
    _sync(device)
    seconds = time.perf_counter() - start
    rates = throughput(backend, image, config, args.repeats)

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"config={args.config} device={name} dtype={str(dtype).removeprefix('torch.')} "
        f"size={image.size[0]}x{image.size[1]} threads={torch.get_num_threads()}"
    )
    print(f"{'measure':<34} {'value':>10}")
    print(f"{'decomposition seconds':<34} {seconds:>10.2f}")
    print(f"{'mask updates run':<34} {len(layers.history):>10d}")
    print(f"{'denoiser evaluations (NFE)':<34} {layers.nfe:>10d}")
    if device.type == "cuda":
        print(
            f"{'peak GPU memory GiB':<34} {torch.cuda.max_memory_allocated(device) / 2**30:>10.2f}"
        )
    print(f"{'batched samples/s (2RK per call)':<34} {rates['batched']:>10.2f}")
    print(f"{'sequential samples/s (2 per call)':<34} {rates['sequential']:>10.2f}")
    speedup = rates["batched"] / rates["sequential"]
    print(
        f"seconds={seconds:.2f} batched_samples_per_s={rates['batched']:.2f} "
        f"sequential_samples_per_s={rates['sequential']:.2f} speedup={speedup:.2f}"
    )


if __name__ == "__main__":
    main()
