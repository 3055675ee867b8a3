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
from typing import Any, Literal

import torch

from ..errors import ModelSpecError

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


def offline() -> bool:
    """True when the Hugging Face hub must not be contacted (``HF_HUB_OFFLINE``)."""
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.strip().upper() in {"1", "ON", "YES", "TRUE"}


def _short(exc: BaseException) -> str:
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
        raise ModelSpecError(f"model {spec!r}: expected a hub id, a folder or a checkpoint file")
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


def _dtype_kwargs(dtype: torch.dtype) -> dict[str, torch.dtype]:
    """``dtype=`` where diffusers renamed ``torch_dtype`` (deprecated there), else the old name."""
    from diffusers.utils import deprecation_utils

    renamed = hasattr(deprecation_utils, "_TORCH_DTYPE_DEPRECATION_MESSAGE")
    return {"dtype": dtype} if renamed else {"torch_dtype": dtype}


def _pipeline_class(spec: str, index: dict[str, Any]) -> tuple[type, dict[str, Any]]:
    """The diffusers class that loads a model_index: SD, SDXL, or a generic pixel pipeline."""
    import diffusers

    components = {
        k
        for k, v in index.items()
        if not k.startswith("_") and isinstance(v, list | tuple) and v and v[0] is not None
    }
    if "unet" not in components:
        name = index.get("_class_name", "unknown")
        raise ModelSpecError(
            f"model {spec!r}: {name} has no UNet; supported are Stable Diffusion 1.x/2.x/XL and "
            "pixel-space UNet2DModel pipelines"
        )
    if "vae" in components and "text_encoder_2" in components:
        return diffusers.StableDiffusionXLPipeline, {}
    if {"vae", "text_encoder", "tokenizer"} <= components:
        return diffusers.StableDiffusionPipeline, {
            "safety_checker": None,
            "feature_extractor": None,
            "requires_safety_checker": False,
        }
    if "vae" not in components:
        return diffusers.DiffusionPipeline, {}
    raise ModelSpecError(
        f"model {spec!r}: unsupported pipeline {index.get('_class_name', 'unknown')!r}"
    )


def _from_hub(source: ModelSource, load):
    """Run ``load(local_files_only)``: online first (unless offline), then from the cache."""
    if offline():
        try:
            return load(True)
        except ModelSpecError:
            raise
        except Exception as exc:
            raise ModelSpecError(
                f"model {source.spec!r}: not a local path and not in the Hugging Face cache, and "
                "the hub is offline (HF_HUB_OFFLINE is set); download it once with network access, "
                f"or pass a local diffusers folder or .safetensors file ({_short(exc)})"
            ) from None
    try:
        return load(False)
    except ModelSpecError:
        raise
    except Exception as online_error:
        try:
            return load(True)
        except Exception:
            raise ModelSpecError(
                f"model {source.spec!r}: could not be loaded from the Hugging Face hub nor the "
                f"local cache ({_short(online_error)}); check the id and the network, or pass a "
                "local diffusers folder or .safetensors file"
            ) from None


def load_pipeline(source: ModelSource, *, dtype: torch.dtype, allow_pickle: bool = False):
    """Load the diffusers pipeline of a resolved spec (on CPU, in ``dtype``).

    Raises:
        ModelSpecError: for anything diffusers cannot load, with the spec named.
    """
    import diffusers

    use_safetensors = None if allow_pickle else True
    if source.kind == "single_file":
        return _load_single_file(source, dtype, use_safetensors)

    def load(local_files_only: bool):
        index = diffusers.DiffusionPipeline.load_config(
            source.location, local_files_only=local_files_only
        )
        cls, extra = _pipeline_class(source.spec, index)
        try:
            return cls.from_pretrained(
                source.location,
                use_safetensors=use_safetensors,
                local_files_only=local_files_only,
                **_dtype_kwargs(dtype),
                **extra,
            )
        except (OSError, ValueError) as exc:
            if "safetensors" in str(exc) and not allow_pickle:
                raise ModelSpecError(
                    f"model {source.spec!r}: no .safetensors weights found; {_PICKLE_HINT}"
                ) from None
            raise

    if source.kind == "hub":
        return _from_hub(source, load)
    try:
        return load(True)
    except ModelSpecError:
        raise
    except Exception as exc:
        raise ModelSpecError(f"model {source.spec!r}: cannot be loaded ({_short(exc)})") from None


def _load_single_file(source: ModelSource, dtype: torch.dtype, use_safetensors):

    if source.config is not None:
        index = json.loads((Path(source.config) / "model_index.json").read_text())
        cls, extra = _pipeline_class(source.spec, index)
    else:
        cls, extra = _single_file_class(source)
    extra.pop("feature_extractor", None)
    local_only = source.config is not None or offline()
    try:
        return cls.from_single_file(
            source.location,
            config=source.config,
            local_files_only=local_only,
            **_dtype_kwargs(dtype),
            **extra,
        )
    except Exception as exc:
        hint = (
            "offline, a single-file checkpoint needs the diffusers config folder of its "
            "architecture: pass config=<folder> (--model-config <folder>)"
            if source.config is None
            else "is it a checkpoint of the config's architecture?"
        )
        raise ModelSpecError(
            f"model {source.spec!r}: cannot load the checkpoint ({_short(exc)}); {hint}"
        ) from None


def _single_file_class(source: ModelSource) -> tuple[type, dict[str, Any]]:
    """SD or SDXL, judged from the checkpoint's keys (SDXL has a second text embedder)."""
    import diffusers

    keys: list[str] = []
    if source.location.lower().endswith(".safetensors"):
        from safetensors import safe_open

        try:
            with safe_open(source.location, framework="pt") as handle:
                keys = list(handle.keys())
        except Exception as exc:
            raise ModelSpecError(
                f"model {source.spec!r}: not a readable safetensors file ({_short(exc)})"
            ) from None
    if any(k.startswith("conditioner.embedders.1.") for k in keys):
        return diffusers.StableDiffusionXLPipeline, {}
    return diffusers.StableDiffusionPipeline, {"safety_checker": None}


__all__ = ["MINI_DIR", "ModelSource", "load_pipeline", "offline", "resolve_spec"]
