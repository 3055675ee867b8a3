"""Model specs: resolution, pickle safety, offline behaviour, and loading with diffusers.

A spec is ``mini`` (the embedded model), a local diffusers folder, a single checkpoint file, or a
Hugging Face hub id. Pickle checkpoints (``.ckpt``, ``.bin``, ``.pt``) can run arbitrary code when
loaded and are refused unless the caller allows them. Every failure becomes one
:class:`~layerdecomp.errors.ModelSpecError` naming the spec and what to do.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from .. import hub
from ..errors import ModelSpecError
from ..hub import offline
from .families import families, family_named

PICKLE_SUFFIXES = (".ckpt", ".bin", ".pt", ".pth", ".pkl")
CHECKPOINT_SUFFIXES = (".safetensors", *PICKLE_SUFFIXES)
MINI_DIR = Path(__file__).resolve().parent.parent / "weights" / "mini"
_PICKLE_HINT = (
    "pickle files can run arbitrary code when loaded; convert them to .safetensors, or pass "
    "allow_pickle=True (--allow-pickle) if you trust the source"
)


@dataclass(frozen=True)
class ModelSource:
    """Where a spec points: ``kind`` is mini, folder, single_file or hub; ``location`` a path/id."""

    spec: str
    kind: Literal["mini", "folder", "single_file", "hub"]
    location: str
    config: str | None = None


def short_error(exc: BaseException) -> str:
    """The first line of ``exc``'s message (at most 200 characters), for one-line errors."""
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return line if len(line) <= 200 else line[:197] + "..."


def resolve_spec(
    spec: str, *, config: str | os.PathLike | None = None, allow_pickle: bool = False
) -> ModelSource:
    """Classify ``spec`` and check it without loading weights.

    Raises:
        ModelSpecError: no such path, a pickle file without ``allow_pickle``, a folder that is not
            a diffusers pipeline, an invalid hub id, or ``mini`` absent from this build.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ModelSpecError(
            f"model {spec!r}: expected a hub id, a folder, a checkpoint file or a diffusers "
            "pipeline object"
        )
    if spec == "mini":
        if not (MINI_DIR / "model_index.json").is_file():
            raise ModelSpecError(
                "the embedded model 'mini' is not installed in this build; pass --model "
                "<hub id or folder> (a diffusers folder, a .safetensors file or a hub id)"
            )
        _check_folder(spec, MINI_DIR, allow_pickle)
        return ModelSource(spec, "mini", str(MINI_DIR))
    path = Path(spec).expanduser()
    if path.is_dir():
        _check_folder(spec, path, allow_pickle)
        return ModelSource(spec, "folder", str(path))
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix in PICKLE_SUFFIXES and not allow_pickle:
            raise ModelSpecError(f"model {spec!r}: refusing a pickle checkpoint; {_PICKLE_HINT}")
        if suffix not in CHECKPOINT_SUFFIXES:
            raise ModelSpecError(
                f"model {spec!r}: not a checkpoint file (expected .safetensors, or .ckpt/.bin/.pt "
                "with --allow-pickle)"
            )
        return ModelSource(spec, "single_file", str(path), _check_config(spec, config))
    looks_like_path = (
        spec.startswith((".", "/", "~", "\\"))
        or spec.count("/") > 1
        or Path(spec).suffix.lower() in CHECKPOINT_SUFFIXES
    )
    if looks_like_path:
        raise ModelSpecError(f"model {spec!r}: no such file or folder")
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(spec)
    except ValueError:
        raise ModelSpecError(
            f"model {spec!r}: neither an existing file or folder nor a valid hub id"
        ) from None
    return ModelSource(spec, "hub", spec)


def _check_config(spec: str, config: str | os.PathLike | None) -> str | None:
    if config is None:
        return None
    folder = Path(config).expanduser()
    if not (folder / "model_index.json").is_file():
        raise ModelSpecError(
            f"model {spec!r}: config {str(config)!r} is not a diffusers folder "
            "(no model_index.json)"
        )
    return str(folder)


def _check_folder(spec: str, folder: Path, allow_pickle: bool) -> None:
    if not (folder / "model_index.json").is_file():
        raise ModelSpecError(
            f"model {spec!r}: not a diffusers pipeline folder (no model_index.json); save one "
            "with pipeline.save_pretrained(folder)"
        )
    if allow_pickle:
        return
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        names = [p.name for p in sub.iterdir() if p.is_file()]
        pickled = [n for n in names if n.lower().endswith(PICKLE_SUFFIXES)]
        if pickled and not any(".safetensors" in n for n in names):
            raise ModelSpecError(
                f"model {spec!r}: {sub.name}/ holds only pickle weights ({pickled[0]}); "
                f"{_PICKLE_HINT}"
            )


def _not_loaded(source: ModelSource, exc: BaseException) -> ModelSpecError:
    """The one-line error for a spec diffusers could not load (hub, cache, or local files)."""
    if source.kind != "hub":
        return ModelSpecError(f"model {source.spec!r}: cannot be loaded ({short_error(exc)})")
    why = hub.unavailable()
    if why is not None:
        return _not_cached(source, why)
    return ModelSpecError(
        f"model {source.spec!r}: could not be loaded from the Hugging Face hub nor the local "
        f"cache ({short_error(exc)}); check the id and the network, or pass a local diffusers "
        "folder or .safetensors file"
    )


def _not_cached(source: ModelSource, why: str) -> ModelSpecError:
    return ModelSpecError(
        f"model {source.spec!r}: not a local path and not in the local Hugging Face cache, and "
        f"{why}; pass a local diffusers folder or .safetensors file (--model PATH), or "
        "download it once with network access"
    )


def load_pipeline(source: ModelSource, *, dtype: torch.dtype, allow_pickle: bool = False):
    """Load the diffusers pipeline of a resolved spec (on CPU, in ``dtype``).

    ``DiffusionPipeline`` does the work: it picks the class from ``model_index.json``
    (``_class_name``) and, for a hub id, falls back to the local cache when the hub cannot be
    reached (or is offline). The ``model_index.json`` is read first only to refuse an unsupported
    class before any weights are downloaded, and to pass the family's extra arguments.

    Raises:
        ModelSpecError: for anything diffusers cannot load, with the spec named.
    """
    from diffusers import DiffusionPipeline

    use_safetensors = None if allow_pickle else True
    if source.kind == "single_file":
        return _load_single_file(source, dtype)
    if source.kind == "hub" and hub.cached(source.location, "model_index.json") is None:
        why = hub.unavailable()  # asked first: the libraries would retry for half a minute
        if why is not None:
            raise _not_cached(source, why)
    try:
        index = DiffusionPipeline.load_config(source.location)
    except Exception as exc:
        raise _not_loaded(source, exc) from None
    _, family = family_named(source.spec, index.get("_class_name"))
    try:
        return DiffusionPipeline.from_pretrained(
            source.location, dtype=dtype, use_safetensors=use_safetensors, **family.load_kwargs
        )
    except ModelSpecError:
        raise
    except Exception as exc:
        if "safetensors" in str(exc) and not allow_pickle:
            raise ModelSpecError(
                f"model {source.spec!r}: no .safetensors weights found; {_PICKLE_HINT}"
            ) from None
        raise _not_loaded(source, exc) from None


def _load_single_file(source: ModelSource, dtype: torch.dtype):
    """``from_single_file`` of the family's class (.ckpt & co. were refused unless allowed)."""
    if source.config is not None:
        index = json.loads((Path(source.config) / "model_index.json").read_text())
        cls, family = family_named(source.spec, index.get("_class_name"))
    else:
        cls = _single_file_class(source)
        family = families()[cls]
    if not hasattr(cls, "from_single_file"):
        raise ModelSpecError(
            f"model {source.spec!r}: single-file checkpoints of {cls.__name__} cannot be loaded; "
            "pass a diffusers folder"
        )
    try:
        return cls.from_single_file(
            source.location,
            config=source.config,
            dtype=dtype,
            **family.single_file_kwargs(),
        )
    except Exception as exc:
        if source.config is not None and type(exc).__name__ == "SingleFileComponentError":
            return _network_from_single_file(source, cls, family, dtype)
        hint = (
            "is it a checkpoint of the config's architecture?"
            if source.config is not None
            else (
                f"{'offline, ' if offline() else ''}a single-file checkpoint needs the diffusers "
                "config folder of its architecture: pass config=<folder> (--model-config <folder>)"
            )
        )
        raise ModelSpecError(
            f"model {source.spec!r}: cannot load the checkpoint ({short_error(exc)}); {hint}"
        ) from None


def _network_from_single_file(source: ModelSource, cls: type, family, dtype: torch.dtype):
    """A checkpoint of the denoising network alone (Flux's, SD 3's without its text encoders):
    the network from the file, every other component from the config folder."""
    import diffusers

    index = json.loads((Path(source.config) / "model_index.json").read_text())
    name = "transformer" if "transformer" in index else "unet"
    network_cls = getattr(diffusers, index[name][1])
    try:
        network = network_cls.from_single_file(
            source.location, config=source.config, subfolder=name, dtype=dtype
        )
        return cls.from_pretrained(
            source.config,
            dtype=dtype,
            use_safetensors=True,
            **{name: network},
            **family.load_kwargs,
        )
    except Exception as exc:
        raise ModelSpecError(
            f"model {source.spec!r}: cannot load the checkpoint ({short_error(exc)}); it holds "
            f"only some components, the others are read from the config folder: is it a {name} "
            "checkpoint of the config's architecture, with the config's other weights present?"
        ) from None


def _single_file_class(source: ModelSource) -> type:
    """SD, SDXL, SD 3 or Flux, judged from the checkpoint's keys (SDXL has a second text
    embedder; SD 3's MMDiT has joint blocks; Flux's transformer double blocks)."""
    import diffusers

    keys: list[str] = []
    if source.location.lower().endswith(".safetensors"):
        from safetensors import safe_open

        try:
            with safe_open(source.location, framework="pt") as handle:
                keys = list(handle.keys())
        except Exception as exc:
            raise ModelSpecError(
                f"model {source.spec!r}: not a readable safetensors file ({short_error(exc)})"
            ) from None
    if any(k.startswith("conditioner.embedders.1.") for k in keys):
        return diffusers.StableDiffusionXLPipeline
    if any(k.startswith("model.diffusion_model.joint_blocks.") for k in keys):
        return diffusers.StableDiffusion3Pipeline
    if any(k.startswith(("double_blocks.", "model.diffusion_model.double_blocks.")) for k in keys):
        return diffusers.FluxPipeline
    return diffusers.StableDiffusionPipeline


__all__ = ["MINI_DIR", "ModelSource", "load_pipeline", "offline", "resolve_spec", "short_error"]
