"""The training configuration: a frozen tree of dataclasses read from a TOML file.

A config file has top-level ``seed``, ``device`` and ``threads`` and the tables ``[data]``,
``[vae]``, ``[text]``, ``[unet]`` and ``[sample]``; every key is optional and unknown keys are an
error. See ``layerdecomp/training/configs/cpu.toml``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

from layerdecomp.models.compiled import COMPILE_MODES

CONFIG_DIR = Path(__file__).parent / "configs"
"""The bundled configs (``cpu.toml``, ``gpu.toml``)."""


@dataclass(frozen=True)
class DataConfig:
    """Training data: composites of the ``train`` split and how captions are chosen."""

    size: int = 64
    num_train: int = 8000
    seed: int = 0
    caption_dropout: float = 0.15
    caption_weights: tuple[float, float, float] = (1.0, 1.0, 1.0)  # fg-only, bg-only, both
    pairs: float = 0.0  # share of two-object composites ("a cat face and a red apple on ...")
    workers: int = 1  # processes rendering the composites; 0: one per CPU core
    renderer: str = "cpu"  # "tensor": single-object composites rendered in torch on the device


@dataclass(frozen=True)
class VAEConfig:
    """The AutoencoderKL and its L1 + KL training (on random crops of side ``crop``)."""

    block_out_channels: tuple[int, ...] = (32, 64, 64)
    layers_per_block: int = 1
    latent_channels: int = 4
    norm_num_groups: int = 16
    steps: int = 1500
    batch_size: int = 32
    crop: int = 32
    lr: float = 5e-4
    warmup: int = 50
    kl_weight: float = 1e-4
    max_minutes: float = 0.0  # 0: no time limit


@dataclass(frozen=True)
class TextConfig:
    """The CLIP text encoder (trained jointly with the UNet) and the tokenizer length."""

    hidden_size: int = 128
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    intermediate_size: int = 512
    max_length: int = 16


@dataclass(frozen=True)
class UNetConfig:
    """The UNet2DConditionModel and its ε-prediction training."""

    block_out_channels: tuple[int, ...] = (64, 96, 128)
    layers_per_block: int = 1
    attention_head_dim: int = 8
    norm_num_groups: int = 32
    addition_embed_type: str = ""  # "text": pooled text embedding added to the time embedding
    offset_noise: float = 0.0  # std of a per-channel constant added to the training noise
    steps: int = 4000
    batch_size: int = 64
    lr: float = 5e-4
    warmup: int = 100
    weight_decay: float = 1e-2
    grad_clip: float = 1.0
    ema_decay: float = 0.999  # 0: no EMA
    max_minutes: float = 0.0  # 0: no time limit


@dataclass(frozen=True)
class SampleConfig:
    """The sample grid written after training (DDIM with classifier-free guidance)."""

    prompts: tuple[str, ...] = (
        "a cat face on blue stripes",
        "a red apple on plain green",
        "a rocket on gray noise",
        "a sunflower on purple checks",
        "a penguin on pink dots",
        "a lemon on red gradient",
        "a fox face",
        "yellow stripes",
    )
    per_prompt: int = 4
    steps: int = 20
    # diffusers' guidance_scale, 1 + w: not the w of the task commands' --guidance
    guidance_scale: float = 5.0
    seed: int = 0


@dataclass(frozen=True)
class TrainConfig:
    """The whole run."""

    seed: int = 0
    device: str = "cpu"
    threads: int = 0  # torch threads; 0 keeps torch's default
    precision: str = "fp32"  # "bf16": bf16 autocast in both loops (on a GPU)
    # torch.compile of both loops' forward and loss: a mode of COMPILE_MODES, the task commands'
    # --compile names ("reduce-overhead": CUDA graphs on a GPU; "none": eager)
    compile: str = "none"
    channels_last: bool = False  # the VAE and UNet in the channels-last layout (GPU convolutions)
    minutes: float = 0.0  # one run: data + VAE + UNet + report in this many minutes (0: off)
    vae_share: float = 0.3  # one run: the VAE's share of the time left after the data
    report_minutes: float = 0.5  # one run: kept for encoding, samples and saving
    data: DataConfig = field(default_factory=DataConfig)
    vae: VAEConfig = field(default_factory=VAEConfig)
    text: TextConfig = field(default_factory=TextConfig)
    unet: UNetConfig = field(default_factory=UNetConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)

    def to_dict(self) -> dict[str, Any]:
        """The config as plain JSON-able data."""
        return dataclasses.asdict(self)


RENAMED = {
    ("[sample]", "guidance"): (
        "guidance_scale",
        "diffusers' guidance_scale, 1 + w, not the tasks' --guidance w",
    ),
}
"""Keys of older configs, by table: their name now and why they were renamed."""


def _build(cls: type, values: dict[str, Any], where: str) -> Any:
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(known))
    for key in unknown:
        if (where, key) in RENAMED:
            new, why = RENAMED[where, key]
            raise ValueError(f"key {key!r} in {where} is now {new!r} ({why}); rename it")
    if unknown:
        raise ValueError(f"unknown key(s) {unknown} in {where}; known: {sorted(known)}")
    kwargs = {}
    for name, value in values.items():
        default = getattr(cls(), name)
        if dataclasses.is_dataclass(default):
            value = _build(type(default), value, f"[{name}]")
        elif isinstance(default, tuple):
            value = tuple(value)
        kwargs[name] = value
    return cls(**kwargs)


def load_config(path: str | Path | None = None, **overrides: Any) -> TrainConfig:
    """Read a TOML config (a name such as ``"cpu"`` means a bundled one).

    Args:
        path: A file path, a bundled config's name, or ``None`` for the defaults.
        **overrides: Top-level tables or keys replacing the file's, e.g. ``vae={"steps": 2}``.

    Returns:
        The frozen :class:`TrainConfig`.

    Raises:
        FileNotFoundError: If the file does not exist.
        ValueError: For unknown keys or an unknown ``compile`` mode.
    """
    values: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.suffix and not path.exists():
            path = CONFIG_DIR / f"{path}.toml"
        if not path.is_file():
            raise FileNotFoundError(f"no config file {path} (bundled: {sorted(_bundled())})")
        values = tomllib.loads(path.read_text())
    for key, value in overrides.items():
        if isinstance(value, dict):
            values[key] = {**values.get(key, {}), **value}
        else:
            values[key] = value
    config = _build(TrainConfig, values, "the config")
    if config.compile not in COMPILE_MODES:
        raise ValueError(f"compile {config.compile!r} is not one of {', '.join(COMPILE_MODES)}")
    if config.text.hidden_size % config.text.num_attention_heads:
        raise ValueError("text.hidden_size must be divisible by text.num_attention_heads")
    return config


def _bundled() -> list[str]:
    return [p.stem for p in CONFIG_DIR.glob("*.toml")]
