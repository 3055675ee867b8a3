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
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile

from layerdecomp.training import loops
from layerdecomp.training.__main__ import compile_option
from layerdecomp.training.components import make_components
from layerdecomp.training.config import load_config


class Clock:
    """The log callback: timestamps (and CUDA events) at the logs of steps ``n`` and ``2n``, and
    the profiler from ``2n`` to ``3n``; the loop's other lines (the compiled step's warm-up
    time, a fallback to eager) are printed and kept in ``notes``."""

    def __init__(self, n: int, device: torch.device) -> None:
        self.n, self.device, self.marks, self.events = n, device, {}, {}
        self.profiler: profile | None = None
        self.notes: list[str] = []

    def __call__(self, line: str) -> None:
        words = line.split()
        if len(words) < 3 or words[1] != "step":
            print(line, flush=True)
            self.notes.append(line)
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
            try:
                self.profiler = profile(activities=activities)
                self.profiler.__enter__()
            except Exception as err:  # noqa: BLE001 - the timings stand without the profile
                print(f"profiler: {type(err).__name__}: {err}")
                self.profiler = None
        elif step == 3 * self.n and self.profiler is not None:
            self.profiler.__exit__(None, None, None)

    def ms_per_step(self) -> float:
        n = self.n
        if self.events:
            return self.events[n].elapsed_time(self.events[2 * n]) / n
        return 1000 * (self.marks[2 * n] - self.marks[n]) / n

    def busy(self) -> float:
        """The union of the device's (GPU kernels and copies; on the CPU: torch ops) busy
        intervals over the wall time of the profiled steps."""
        wall = 1e6 * (self.marks[3 * self.n] - self.marks[2 * self.n])  # µs
        kind = DeviceType.CUDA if self.device.type == "cuda" else DeviceType.CPU
        if self.profiler is None:
            return float("nan")
        try:
            events = self.profiler.events()
        except Exception as err:  # noqa: BLE001 - no profiler data (no CUPTI): no share
            print(f"profiler: {type(err).__name__}: {err}")
            return float("nan")
        spans = sorted(
            (e.time_range.start, e.time_range.end) for e in events if e.device_type == kind
        )
        total, reach = 0.0, float("-inf")
        for start, end in spans:
            if end > reach:
                total += end - max(start, reach)
                reach = end
        return total / wall


def _kwargs(function, **wanted):
    """The keyword arguments ``function`` accepts (an older loop lacks the newer ones)."""
    accepted = inspect.signature(function).parameters
    return {k: v for k, v in wanted.items() if k in accepted}


def measure(
    config_name: str,
    device: str | None,
    steps: int,
    compile_mode: str | None,
    on_part=lambda figures: None,
) -> dict:
    """Time both loops of a config (``compile_mode``: override the config's ``compile``);
    returns the figures as a dict, also passed to ``on_part`` after the VAE's."""
    overrides = {"device": device, "compile": compile_mode}
    config = load_config(config_name, **{k: v for k, v in overrides.items() if v is not None})
    dev = torch.device(config.device)
    if dev.type == "cuda":  # as layerdecomp.training.train does
        torch.backends.cudnn.benchmark = True
        torch.set_float32_matmul_precision("high")
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
        "compile": config.compile,
        "steps_timed": steps,
    }

    vae = parts["vae"].to(dev)
    clock = Clock(steps, dev)
    cfg = dataclasses.replace(config.vae, steps=3 * steps, max_minutes=0, warmup=1)
    extra = {
        "precision": config.precision,
        "channels_last": getattr(config, "channels_last", 0),
        "compile_mode": config.compile,
    }
    loops.train_vae(
        vae, images.to(dev), cfg, generator, clock, steps, **_kwargs(loops.train_vae, **extra)
    )
    figures["vae"] = {
        "batch": cfg.batch_size,
        "crop": cfg.crop,
        "ms_per_step": clock.ms_per_step(),
        "busy": clock.busy(),
        "notes": clock.notes,
    }
    on_part(figures)

    c = config.vae.latent_channels
    side = size // 2 ** (len(config.vae.block_out_channels) - 1)
    shape = (n_data, c, side, side)
    latents = (torch.randn(shape, device=dev), torch.ones(shape, device=dev))
    unet, text_encoder = parts["unet"].to(dev), parts["text_encoder"].to(dev)
    clock = Clock(steps, dev)
    cfg = dataclasses.replace(config.unet, steps=3 * steps, max_minutes=0, warmup=1)
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
        "notes": clock.notes,
    }
    return figures


def render_rates(device: str, size: int, n: int) -> dict:
    """Composites per second: the CPU renderer in one process and on every core
    (``make_training_data``), and the tensor renderer on ``device`` (batches of 1024)."""
    from layerdecomp.data.composites import make_composite
    from layerdecomp.data.tensor_render import build_atlas, draw, render
    from layerdecomp.training.config import DataConfig
    from layerdecomp.training.dataset import _cores, make_training_data
    from layerdecomp.training.tokenizer import build_tokenizer

    rates = {}
    make_composite(0, "train", size)  # the font, the first sprites
    began = time.perf_counter()
    count = max(50, n // 50)
    for i in range(count):
        make_composite(i, "train", size)
    rates["cpu, 1 process"] = count / (time.perf_counter() - began)
    began = time.perf_counter()
    make_training_data(DataConfig(size=size, num_train=n, workers=0), build_tokenizer())
    rates[f"cpu, {_cores()} processes (with tokens)"] = n / (time.perf_counter() - began)
    dev = torch.device(device)
    began = time.perf_counter()
    atlas = build_atlas("train", size, dev)
    rates["tensor atlas build (s)"] = time.perf_counter() - began
    g = torch.Generator(dev).manual_seed(0)
    render(atlas, draw(atlas, 1024, size, g), size)  # warm-up
    if dev.type == "cuda":
        torch.cuda.synchronize()
    began = time.perf_counter()
    batches = max(1, n // 1024)
    for _ in range(batches):
        images, _ = render(atlas, draw(atlas, 1024, size, g), size)
    images.sum().item()
    rates[f"tensor renderer, {dev.type}"] = 1024 * batches / (time.perf_counter() - began)
    return rates


def _renamed_copy(source: Path, into: Path) -> str:
    """Copy the ``layerdecomp`` package of an older checkout to ``into/oldld`` with its imports
    renamed, so both versions can be imported in one process; returns the package name."""
    import re
    import shutil

    shutil.copytree(source / "layerdecomp", into / "oldld", ignore=shutil.ignore_patterns("*.pyc"))
    for path in (into / "oldld").rglob("*.py"):
        text = re.sub(r"\blayerdecomp(?=[. ])", "oldld", path.read_text())
        path.write_text(text)
    return "oldld"


def paired(config_name: str, old_source: str, steps: int, reps: int) -> dict:
    """ms per step of the loops of an older checkout and of this one, in one process, in
    alternating bursts of ``steps`` steps (so a shared machine's load hits both alike)."""
    import importlib
    import statistics
    import sys
    import tempfile

    folder = Path(tempfile.mkdtemp())
    sys.path.insert(0, str(folder))
    old = importlib.import_module(_renamed_copy(Path(old_source), folder) + ".training.loops")
    config = load_config(config_name, device="cpu")
    torch.set_num_threads(max(config.threads, 1))
    torch.manual_seed(config.seed)
    parts = make_components(config)
    g = torch.Generator().manual_seed(0)
    n, size = 128, config.data.size
    images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)
    tokens = torch.randint(0, len(parts["tokenizer"]), (n, 3, 16), generator=g)
    empty = loops.tokenize(parts["tokenizer"], [""])[0]
    side = size // 2 ** (len(config.vae.block_out_channels) - 1)
    latents = (torch.randn(n, 4, side, side), torch.ones(n, 4, side, side))
    start = {
        k: {n_: v.clone() for n_, v in parts[k].state_dict().items()}
        for k in parts
        if k in ("vae", "unet", "text_encoder")
    }
    times: dict[str, list[float]] = {}
    for rep in range(reps):
        order = (("old", old), ("new", loops)) if rep % 2 == 0 else (("new", loops), ("old", old))
        for name, module in order:
            for k, state in start.items():
                parts[k].load_state_dict(state)
            for phase in ("vae", "unet"):
                marks: list[float] = []

                def log(line: str, marks=marks) -> None:
                    if " step " in line:
                        marks.append(time.perf_counter())

                cfg = dataclasses.replace(
                    getattr(config, phase), steps=steps + 1, warmup=1, max_minutes=0
                )
                gen = torch.Generator().manual_seed(rep)
                if phase == "vae":
                    module.train_vae(parts["vae"], images, cfg, gen, log, 1)
                else:
                    data = module.TrainingData(images, tokens, empty)
                    module.train_unet(
                        parts["unet"],
                        parts["text_encoder"],
                        parts["scheduler"],
                        latents,
                        data,
                        cfg,
                        config.data,
                        gen,
                        log,
                        1,
                    )
                times.setdefault(f"{phase} {name}", []).append(
                    1000 * (marks[-1] - marks[0]) / steps
                )
    result = {k: statistics.median(v) for k, v in times.items()}
    for phase in ("vae", "unet"):
        ratios = [a / b for a, b in zip(times[f"{phase} new"], times[f"{phase} old"], strict=True)]
        result[f"{phase} new/old"] = statistics.median(ratios)
    return result


@click.command()
@click.option("--config", "config_name", default="cpu", show_default=True, help="A config.")
@click.option("--device", default=None, help="Override the config's device.")
@click.option(
    "--steps", type=click.IntRange(min=0), default=10, show_default=True, help="0: no step timing."
)
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None)
@click.option(
    "--render",
    "render_n",
    type=click.IntRange(min=0),
    default=0,
    help="Also time rendering this many composites (CPU renderer, every core, tensor renderer).",
)
@click.option(
    "--paired",
    "old_source",
    type=click.Path(file_okay=False, exists=True),
    default=None,
    help="A checkout of an older version (e.g. from `git archive REV layerdecomp`): time its "
    "loops against this one's on the CPU, alternating, and print the medians.",
)
@click.option("--reps", type=click.IntRange(min=1), default=6, show_default=True)
@compile_option
def main(
    config_name: str,
    device: str | None,
    steps: int,
    json_path: str | None,
    render_n: int,
    old_source: str | None,
    reps: int,
    compile_mode: str | None,
) -> None:
    """Print ms per VAE and UNet step and the device-busy share for CONFIG on DEVICE."""
    if old_source:
        result = paired(config_name, old_source, steps, reps)
        for key, value in result.items():
            print(f"{key}: {value:.3f}" if "/" in key else f"{key}: {value:.1f} ms/step")
        if json_path:
            Path(json_path).write_text(json.dumps(result, indent=1) + "\n")
        return

    def save(figures: dict) -> None:  # after each part: a time limit keeps what was measured
        if json_path:
            Path(json_path).write_text(json.dumps(figures, indent=1) + "\n")

    figures = measure(config_name, device, steps, compile_mode, save) if steps else {}
    if steps:
        print("| loop | device | VAE ms/step (batch) | busy | UNet ms/step (batch) | busy |")
        print("|---|---|---|---|---|---|")
        v, u = figures["vae"], figures["unet"]
        mode = figures["compile"]
        print(
            f"| {figures['loop']}{'' if mode == 'none' else ', ' + mode} "
            f"| {figures['device']}, {figures['threads']} threads "
            f"| {v['ms_per_step']:.1f} ({v['batch']}) | {v['busy']:.0%} "
            f"| {u['ms_per_step']:.1f} ({u['batch']}) | {u['busy']:.0%} |"
        )
        save(figures)
    if render_n:
        config = load_config(config_name, **({"device": device} if device else {}))
        figures["composites_per_s"] = render_rates(config.device, config.data.size, render_n)
        for name, rate in figures["composites_per_s"].items():
            print(f"{name}: {rate:.1f}")
        save(figures)


if __name__ == "__main__":
    main()
