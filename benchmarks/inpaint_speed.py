"""End-to-end inpainting speed (§4.1 defaults: 20 steps × 5 Newton iterations) against the floor.

The floor is NFE × one measured denoiser forward at the same batch and precision: what the run
would cost if the network were the only work. ``--config sd15`` builds the SD 1.5 UNet, VAE and
CLIP text encoder architectures with random weights (the real FLOPs) at 512×512; ``--config tiny``
a miniature of them that runs on a CPU. Goal on an H100 (sd15, fp16): ≤ 1.5 s, ≤ 1.2× the floor.

    python benchmarks/inpaint_speed.py --config tiny
    python benchmarks/inpaint_speed.py --config sd15 --device cuda --dtype float16

``--device``, ``--dtype`` and ``--compile`` (a torch.compile mode, ``--compile reduce-overhead``)
are the model options' (:class:`ModelOptions`); ``--steps``, ``--iters`` and ``--direction`` the
task's (:class:`InpaintConfig`), each with its declared help, choices and bounds.

Prints a table, then ``seconds=<s> nfe=<n> floor_ratio=<r>`` as the last line.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from PIL import Image
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from layerdecomp.models import from_pipeline
from layerdecomp.models.compiled import compile_backend
from layerdecomp.models.options import ModelOptions
from layerdecomp.options import configure
from layerdecomp.tasks.inpaint import InpaintConfig, inpaint

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _config_args import add_config_arguments, parse_config, parse_placement  # noqa: E402

CONFIGS = {
    "sd15": {
        "size": 512,
        "unet": {"cross_attention_dim": 768},  # the rest are UNet2DConditionModel's SD 1.x defaults
        "vae": {"block_out_channels": (128, 256, 512, 512), "layers_per_block": 2},
        "text": {
            "hidden_size": 768,
            "intermediate_size": 3072,
            "num_attention_heads": 12,
            "num_hidden_layers": 12,
            "vocab_size": 49408,
            "hidden_act": "quick_gelu",
        },
    },
    "tiny": {
        "size": 64,
        "unet": {
            "block_out_channels": (32, 64),
            "layers_per_block": 1,
            "cross_attention_dim": 32,
            "attention_head_dim": 4,
            "norm_num_groups": 8,
            "down_block_types": ("CrossAttnDownBlock2D", "DownBlock2D"),
            "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D"),
        },
        "vae": {
            "block_out_channels": (16, 32, 32, 32),
            "layers_per_block": 1,
            "norm_num_groups": 8,
        },
        "text": {
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_attention_heads": 4,
            "num_hidden_layers": 2,
            "vocab_size": 1000,
        },
    },
}


def _tokenizer(folder: Path) -> CLIPTokenizer:
    """A byte-level CLIP tokenizer written offline (no vocabulary download)."""
    bs = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), 256)]
    cs, extra = list(bs), 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + extra)
            extra += 1
    chars = [chr(c) for c in cs]
    tokens = [*chars, *(c + "</w>" for c in chars), "<|startoftext|>", "<|endoftext|>"]
    vocab = {t: i for i, t in enumerate(dict.fromkeys(tokens))}
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer(
        str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=77
    )


def build(config: str, device: torch.device, dtype: torch.dtype):
    """The SD-architecture pipeline of ``config`` with random weights, as a backend."""
    spec = CONFIGS[config]
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as folder:
        tokenizer = _tokenizer(Path(folder))
    text = CLIPTextConfig(
        max_position_embeddings=77,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **spec["text"],
    )
    with torch.device(device):  # initialise on the device: fast for 860M parameters on a GPU
        unet = UNet2DConditionModel(sample_size=spec["size"] // 8, **spec["unet"])
        vae = AutoencoderKL(
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            latent_channels=4,
            sample_size=spec["size"],
            scaling_factor=0.18215,
            **spec["vae"],
        )
        text_encoder = CLIPTextModel(text)
    scheduler = PNDMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        steps_offset=1,
        set_alpha_to_one=False,
        skip_prk_steps=True,
    )
    pipeline = StableDiffusionPipeline(
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    return from_pipeline(pipeline, spec=f"{config} (random weights)", device=device, dtype=dtype)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def forward_seconds(backend, size: int, repeats: int) -> float:
    """Mean seconds of one denoiser evaluation (batch 1, no guidance), after warm-up."""
    denoiser = backend.denoiser("")
    x_t = torch.randn(backend.latent_shape(1, size, size), device=backend.device)
    t = torch.tensor(500, device=backend.device)
    with torch.no_grad():
        for _ in range(3):
            denoiser(x_t, t)
        _sync(backend.device)
        start = time.perf_counter()
        for _ in range(repeats):
            denoiser(x_t, t)
        _sync(backend.device)
    return (time.perf_counter() - start) / repeats


def _inputs(size: int) -> tuple[Image.Image, Image.Image]:
    gen = torch.Generator().manual_seed(0)
    pixels = torch.randint(0, 256, (size, size, 3), generator=gen, dtype=torch.uint8)
    mask = Image.new("L", (size, size), 0)
    mask.paste(255, (size // 2, 0, size, size))  # half-image inpainting, as in Fig. 1
    return Image.fromarray(pixels.numpy()), mask


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=sorted(CONFIGS), default="tiny")
    parser.add_argument("--repeats", type=int, default=10, help="forwards timed for the floor")
    model_options = add_config_arguments(parser, ModelOptions, only=("device", "dtype", "compile"))
    task_options = add_config_arguments(parser, InpaintConfig, only=("steps", "iters", "direction"))
    args = parser.parse_args(argv)
    config = parse_config(parser, InpaintConfig, args, task_options)
    device, dtype = parse_placement(parser, args, model_options)
    compile_mode = parse_config(parser, ModelOptions, args, model_options).compile

    size = CONFIGS[args.config]["size"]
    backend = build(args.config, device, dtype)
    compile_backend(backend, compile_mode)
    image, mask = _inputs(size)
    kwargs = {"seed": 0, "disable_progress": True}
    warm_up = configure(InpaintConfig, config, {"steps": 2, "iters": 1})
    inpaint(backend, image, mask, config=warm_up, **kwargs)  # warm-up: kernels, VAE

    per_forward = forward_seconds(backend, size, args.repeats)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    _sync(device)
    start = time.perf_counter()
    out = inpaint(backend, image, mask, config=config, **kwargs)
    _sync(device)
    seconds = time.perf_counter() - start
    floor = out.nfe * per_forward
    ratio = seconds / floor

    peak = (
        f"{torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB"
        if device.type == "cuda"
        else "n/a"
    )
    sampling, direction = config.sampling, config.sampling.refine.direction
    rows = [
        ("config", f"{args.config} ({size}x{size}, random weights)"),
        ("device / dtype", f"{device} / {str(dtype).removeprefix('torch.')}"),
        ("steps x iterations", f"{sampling.steps} x {sampling.refine.iters} ({direction})"),
        ("total seconds", f"{seconds:.3f}"),
        ("  sample / decode", f"{out.timings['sample']:.3f} / {out.timings['decode']:.3f}"),
        ("NFE", f"{out.nfe}"),
        ("seconds per NFE", f"{seconds / out.nfe * 1e3:.2f} ms"),
        ("one forward (floor unit)", f"{per_forward * 1e3:.2f} ms"),
        ("floor = NFE x forward", f"{floor:.3f} s"),
        ("ratio to floor", f"{ratio:.3f}"),
        ("peak GPU memory", peak),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    print(f"seconds={seconds:.4f} nfe={out.nfe} floor_ratio={ratio:.4f}")


if __name__ == "__main__":
    main()
