"""The options that choose and place a model: one declaration for every front end.

:class:`ModelOptions` is a frozen options dataclass like the task configs (each field with its
help and bounds, :func:`solvers.options.option`): the command line generates ``--model``,
``--dtype``, ``--compile``… from it, recipes and ``run.json`` use the same names, and
:meth:`ModelOptions.load` hands them to :func:`~layerdecomp.models.load_model`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

from solvers.options import check_fields, option

from ..errors import ModelSpecError
from .compiled import CompileMode

Precision = Literal["auto", "float16", "bfloat16", "float32"]

DECIDING = ("model", "model_config", "dtype", "compile", "lora")
"""The model options that shape a run's result (its fingerprint); ``device``,
``allow_pickle`` and ``max_memory`` only say where, whether and in how many pieces it runs."""


@dataclass(frozen=True)
class ModelOptions:
    """Which model, from where, on which device, in which precision, compiled or not."""

    model: str = option("mini", "Hub id, diffusers folder, .safetensors checkpoint, or 'mini'.")
    model_config: str | None = option(
        None, "Diffusers folder with the config of a single-file checkpoint (offline)."
    )
    allow_pickle: bool = option(False, "Accept .ckpt/.bin/.pt weights (unsafe).")
    device: str = option("auto", "auto, cpu, cuda, cuda:N, mps.")
    dtype: Precision = option("auto", "Network precision (auto: float16 on GPU, float32 on CPU).")
    compile: CompileMode = option(
        "none",
        "torch.compile the denoising network (reduce-overhead: CUDA graphs on a GPU); the first "
        "calls of each shape compile, results match eager.",
    )
    lora: tuple[str, ...] = option(
        (),
        "A LoRA adapter, FILE[:SCALE] (a .safetensors file or a folder, scale 1 by default), "
        "loaded with diffusers' load_lora_weights; repeat it for more.",
    )
    max_memory: float | None = option(
        None,
        "GiB the run may use on the device: the network's batches and the decodes run in "
        "chunks that fit (default: the device's free memory on a GPU, no limit on the CPU); "
        "the results are the same.",
        gt=0,
    )

    def __post_init__(self) -> None:
        if self.model_config is not None:
            object.__setattr__(self, "model_config", str(self.model_config))
        lora = (self.lora,) if isinstance(self.lora, str) else tuple(self.lora)
        object.__setattr__(self, "lora", tuple(str(item) for item in lora))
        check_fields(self)

    def load(self):
        """The backend these options name (:func:`~layerdecomp.models.load_model`), with its
        LoRA adapters loaded and active (:func:`~layerdecomp.models.lora.load_lora`) and its
        memory budget set (:meth:`~layerdecomp.models.base.Backend.set_memory_budget`)."""
        from . import load_model

        backend = load_model(
            self.model,
            device=self.device,
            dtype=self.dtype,
            config=self.model_config,
            allow_pickle=self.allow_pickle,
            compile=self.compile,
            lora=self.lora,
        )
        if self.max_memory is not None:  # else the backend's default (a GPU's free memory)
            budget = getattr(backend, "set_memory_budget", None)
            if budget is None:
                raise ModelSpecError(
                    f"max_memory: the {type(backend).__name__} backend cannot run under a budget"
                )
            budget(self.max_memory)
        return backend

    def record(self) -> dict[str, object]:
        """The options, JSON-ready, for ``run.json``."""
        out = asdict(self)
        out["lora"] = list(self.lora)
        return out


__all__ = ["DECIDING", "ModelOptions", "Precision"]
