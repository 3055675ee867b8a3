"""ms per VAE step and per UNet step of ``layerdecomp.training``, and the device's busy share.

Both loops run on synthetic uint8 images and random caption tokens of the config's sizes (no
composites, no font), for ``3 × steps`` steps each, logging every ``steps``: the time between the
logs at ``steps`` and ``2 × steps`` (a log reads the losses, so the device has caught up; CUDA
events on a GPU, ``perf_counter`` on the CPU) gives ms per step; from ``2 × steps`` to
``3 × steps`` runs under :mod:`torch.profiler`, whose kernel time over the wall time is the
device-busy share (on the CPU: the share of the wall time spent inside torch ops, the rest being
Python and the loop's host work).

    python benchmarks/train_step.py --config cpu --device cpu --steps 10
    python benchmarks/train_step.py --config gpu --steps 20 --json train_step.json

The loops are imported from the installed ``layerdecomp``: point ``PYTHONPATH`` at another
checkout (e.g. ``git archive REV layerdecomp | tar -x -C /tmp/old``) to time an older loop with
the same command.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import time
from pathlib import Path

import click
import torch
from torch.profiler import ProfilerActivity, profile

from layerdecomp.training import loops
from layerdecomp.training.components import make_components
from layerdecomp.training.config import load_config


class Clock:
    """The log callback: timestamps (and CUDA events) at the logs of steps ``n`` and ``2n``, and
    the profiler from ``2n`` to ``3n``."""

    def __init__(self, n: int, device: torch.device) -> None:
        self.n, self.device, self.marks, self.events = n, device, {}, {}
        self.profiler: profile | None = None

    def __call__(self, line: str) -> None:
        words = line.split()
        if len(words) < 3 or words[1] != "step":
            return
        step = int(words[2].split("/")[0])
        if step % self.n:
            return
        if self.device.type == "cuda":
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            self.events[step] = event
            torch.cuda.synchronize()
        self.marks[step] = time.perf_counter()
        if step == 2 * self.n:
            activities = [ProfilerActivity.CPU]
            if self.device.type == "cuda":
                activities.append(ProfilerActivity.CUDA)
            self.profiler = profile(activities=activities)
            self.profiler.__enter__()
        elif step == 3 * self.n and self.profiler is not None:
            self.profiler.__exit__(None, None, None)

    def ms_per_step(self) -> float:
        n = self.n
        if self.events:
            return self.events[n].elapsed_time(self.events[2 * n]) / n
        return 1000 * (self.marks[2 * n] - self.marks[n]) / n

    def busy(self) -> float:
        """Kernel (GPU) or op (CPU) time over the wall time of the profiled steps."""
        wall = 1e6 * (self.marks[3 * self.n] - self.marks[2 * self.n])  # µs
        events = self.profiler.key_averages()
        if self.device.type == "cuda":
            total = sum(getattr(e, "self_device_time_total", 0) for e in events)
        else:
            total = sum(e.self_cpu_time_total for e in events)
        return total / wall


def _kwargs(function, **wanted):
    """The keyword arguments ``function`` accepts (an older loop lacks the newer ones)."""
    accepted = inspect.signature(function).parameters
    return {k: v for k, v in wanted.items() if k in accepted}


def measure(config_name: str, device: str | None, steps: int) -> dict:
    """Time both loops of a config; returns the figures as a dict."""
    config = load_config(config_name, **({"device": device} if device else {}))
    dev = torch.device(config.device)
    if config.threads > 0:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    parts = make_components(config)
    tokenizer, size = parts["tokenizer"], config.data.size
    n_data = 4 * max(config.vae.batch_size, config.unet.batch_size)
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n_data, 3, size, size), dtype=torch.uint8, generator=g)
    length = tokenizer.model_max_length
    tokens = torch.randint(0, len(tokenizer), (n_data, 3, length), generator=g)
    data = loops.TrainingData(images, tokens, loops.tokenize(tokenizer, [""])[0])
    new_loop = hasattr(loops, "random_crops")  # the host-free loop of issue #24
    generator = torch.Generator(dev if new_loop else "cpu").manual_seed(0)
    figures: dict = {
        "config": config_name,
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "loop": "new" if new_loop else "old",
        "precision": config.precision,
        "steps_timed": steps,
    }

    vae = parts["vae"].to(dev)
    clock = Clock(steps, dev)
    cfg = dataclasses.replace(config.vae, steps=3 * steps, max_minutes=0, warmup=1)
    extra = {"precision": config.precision, "channels_last": getattr(config, "channels_last", 0)}
    loops.train_vae(
        vae, images.to(dev), cfg, generator, clock, steps, **_kwargs(loops.train_vae, **extra)
    )
    figures["vae"] = {
        "batch": cfg.batch_size,
        "crop": cfg.crop,
        "ms_per_step": clock.ms_per_step(),
        "busy": clock.busy(),
    }

    c = config.vae.latent_channels
    side = size // 2 ** (len(config.vae.block_out_channels) - 1)
    shape = (n_data, c, side, side)
    latents = (torch.randn(shape, device=dev), torch.ones(shape, device=dev))
    unet, text_encoder = parts["unet"].to(dev), parts["text_encoder"].to(dev)
    clock = Clock(steps, dev)
    cfg = dataclasses.replace(config.unet, steps=3 * steps, max_minutes=0, warmup=1)
    extra = {**extra, "compile_backend": config.compile}
    loops.train_unet(
        unet,
        text_encoder,
        parts["scheduler"],
        latents,
        data.to(dev) if hasattr(data, "to") else data,
        cfg,
        config.data,
        generator,
        clock,
        steps,
        **_kwargs(loops.train_unet, **extra),
    )
    figures["unet"] = {
        "batch": cfg.batch_size,
        "ms_per_step": clock.ms_per_step(),
        "busy": clock.busy(),
    }
    return figures


@click.command()
@click.option("--config", "config_name", default="cpu", show_default=True, help="A config.")
@click.option("--device", default=None, help="Override the config's device.")
@click.option("--steps", type=click.IntRange(min=2), default=10, show_default=True)
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None)
def main(config_name: str, device: str | None, steps: int, json_path: str | None) -> None:
    """Print ms per VAE and UNet step and the device-busy share for CONFIG on DEVICE."""
    figures = measure(config_name, device, steps)
    print("| loop | device | VAE ms/step (batch) | busy | UNet ms/step (batch) | busy |")
    print("|---|---|---|---|---|---|")
    v, u = figures["vae"], figures["unet"]
    print(
        f"| {figures['loop']} | {figures['device']}, {figures['threads']} threads "
        f"| {v['ms_per_step']:.1f} ({v['batch']}) | {v['busy']:.0%} "
        f"| {u['ms_per_step']:.1f} ({u['batch']}) | {u['busy']:.0%} |"
    )
    if json_path:
        Path(json_path).write_text(json.dumps(figures, indent=1) + "\n")


if __name__ == "__main__":
    main()
