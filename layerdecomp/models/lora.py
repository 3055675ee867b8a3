"""LoRA adapters (``--lora FILE[:SCALE]``), loaded with diffusers' own ``load_lora_weights``.

Each entry is a LoRA file (``.safetensors``; ``.bin``/``.pt``… only with ``allow_pickle``) or a
folder holding one, with an optional scale after a last ``:`` (``style.safetensors:0.8``; 1 by
default). A path that exists as written is taken whole, so a folder whose name ends in ``:2`` is a
path, and only a trailing ``:number`` is a scale (``C:\\loras\\a.safetensors`` has none). The
adapters are loaded into the pipeline through diffusers' PEFT integration (the ``peft`` package),
named ``lora0``, ``lora1``… in order, and activated together with their scales
(``pipeline.set_adapters(names, weights)``): a scale of 0 gives the model without that adapter.
Their layers are frozen (``requires_grad_(False)``, ``eval()``), as the model's are.
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import ModelSpecError
from .resolve import PICKLE_SUFFIXES, short_error

_SCALE = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


@dataclass(frozen=True)
class Lora:
    """One ``FILE[:SCALE]`` entry: the adapter's path and its scale."""

    path: str
    scale: float = 1.0

    @classmethod
    def parse(cls, entry: str) -> Lora:
        """``FILE[:SCALE]`` → :class:`Lora` (the scale only from a trailing ``:number``).

        Raises:
            ModelSpecError: an empty entry or a scale that is not finite.
        """
        text = str(entry).strip()
        if not text:
            raise ModelSpecError("lora '': expected FILE[:SCALE], a LoRA file or folder")
        path, scale = text, 1.0
        head, colon, tail = text.rpartition(":")
        if colon and head and _SCALE.fullmatch(tail) and not Path(text).expanduser().exists():
            path, scale = head, float(tail)
        if not math.isfinite(scale):
            raise ModelSpecError(f"lora {text!r}: the scale must be a finite number")
        return cls(path, scale)

    def record(self) -> dict[str, Any]:
        """JSON-ready, for the backend's description."""
        return {"path": self.path, "scale": self.scale}


def _weights(lora: Lora, allow_pickle: bool) -> Path:
    """The checked path of ``lora``: an existing file of a weights format, or a folder with one."""
    path = Path(lora.path).expanduser()
    hint = "convert it to .safetensors, or pass --allow-pickle if you trust the source"
    if path.is_dir():
        names = [p.name.lower() for p in path.iterdir() if p.is_file()]
        if any(n.endswith(".safetensors") for n in names):
            return path
        if allow_pickle and any(n.endswith(PICKLE_SUFFIXES) for n in names):
            return path
        pickled = [n for n in names if n.endswith(PICKLE_SUFFIXES)]
        what = f"only pickle weights ({pickled[0]}); {hint}" if pickled else "no .safetensors file"
        raise ModelSpecError(f"lora {lora.path!r}: the folder holds {what}")
    if not path.is_file():
        raise ModelSpecError(f"lora {lora.path!r}: no such file or folder")
    suffix = path.suffix.lower()
    if suffix in PICKLE_SUFFIXES and not allow_pickle:
        raise ModelSpecError(
            f"lora {lora.path!r}: refusing a pickle file (it can run code); {hint}"
        )
    if suffix != ".safetensors" and suffix not in PICKLE_SUFFIXES:
        raise ModelSpecError(
            f"lora {lora.path!r}: not a LoRA file (expected .safetensors, or .bin/.pt with "
            "--allow-pickle)"
        )
    return path


def weight_files(lora: Lora, allow_pickle: bool = False) -> list[Path]:
    """The files ``lora`` is loaded from, sorted by name: its file, or every weights file of its
    folder (those diffusers picks one among).

    Raises:
        ModelSpecError: as :func:`load_lora` for a missing path or a pickle file.
    """
    path = _weights(lora, allow_pickle)
    if path.is_file():
        return [path]
    suffixes = (".safetensors", *(PICKLE_SUFFIXES if allow_pickle else ()))
    return sorted(p for p in path.iterdir() if p.is_file() and p.name.lower().endswith(suffixes))


def loaded_adapters(pipeline: Any) -> set[str]:
    """The names of the adapters loaded in any component of ``pipeline`` (none without PEFT)."""
    try:
        return {name for names in pipeline.get_list_adapters().values() for name in names}
    except Exception:  # no LoRA support, or no peft: nothing is loaded
        return set()


def load_lora(
    pipeline: Any, entries, *, allow_pickle: bool = False, spec: str = "<pipeline>"
) -> list[Lora]:
    """Load the LoRA ``entries`` (``FILE[:SCALE]``) into ``pipeline`` and activate them.

    Args:
        pipeline: a diffusers pipeline with LoRA support (``load_lora_weights``).
        entries: ``FILE[:SCALE]`` strings (or :class:`Lora`), in order.
        allow_pickle: accept pickle weights (``.bin``, ``.pt``…), which can run code.
        spec: the model's name, for errors.

    Returns:
        The parsed entries, as loaded.

    Raises:
        ModelSpecError: a malformed entry, a missing or pickle file, a pipeline that takes no
            LoRA (pixel-space models), no ``peft``, or a LoRA that does not fit the model.
    """
    loras = [item if isinstance(item, Lora) else Lora.parse(item) for item in entries]
    if not loras:
        return []
    if not hasattr(pipeline, "load_lora_weights"):
        raise ModelSpecError(
            f"lora: model {spec!r} ({type(pipeline).__name__}) cannot take LoRA adapters"
        )
    from diffusers.utils import USE_PEFT_BACKEND

    if not USE_PEFT_BACKEND:
        raise ModelSpecError("lora: LoRA adapters need the peft package (pip install peft)")
    taken = loaded_adapters(pipeline)
    names = [f"lora{i}" for i in range(len(loras) + len(taken)) if f"lora{i}" not in taken]
    names = names[: len(loras)]
    for lora, name in zip(loras, names, strict=True):
        path = _weights(lora, allow_pickle)
        location, weight = (str(path.parent), path.name) if path.is_file() else (str(path), None)
        try:
            with warnings.catch_warnings():  # several adapters in one model are meant here
                warnings.filterwarnings("ignore", "Already found a `peft_config`", UserWarning)
                pipeline.load_lora_weights(
                    location,
                    weight_name=weight,
                    adapter_name=name,
                    use_safetensors=None if allow_pickle else True,
                    local_files_only=True,
                )
        except Exception as exc:
            raise ModelSpecError(
                f"lora {lora.path!r}: cannot be loaded into model {spec!r} ({short_error(exc)})"
            ) from None
        if name not in loaded_adapters(pipeline):
            raise ModelSpecError(
                f"lora {lora.path!r}: none of its weights fit a layer of model {spec!r} "
                "(a LoRA for another architecture?)"
            )
    pipeline.set_adapters(names, adapter_weights=[lora.scale for lora in loras])
    for module in pipeline.components.values():  # the adapters' new layers: inference only
        if isinstance(module, torch.nn.Module):
            module.requires_grad_(False).eval()
    return loras


__all__ = ["Lora", "load_lora", "loaded_adapters", "weight_files"]
