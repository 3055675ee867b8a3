"""The tasks, each declared once (:class:`~.declare.Task`): decompose, inpaint, superres, style
and a constraint run by name. The command line, the recipes, ``run.json`` and the fingerprints
are generated from these declarations; each ``prepare`` checks and opens the inputs before the
model loads, each ``run`` is the task's one run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from solvers.options import check_fields, option

from ..errors import InputError
from ..layers.config import DecomposeConfig
from .constraint import ConstraintConfig
from .declare import Input, Request, RunResult, Task
from .inpaint import InpaintConfig
from .style import StyleConfig
from .superres import SuperresConfig


def _image(request: Request, name: str = "image") -> dict[str, Any]:
    from ..io import open_image, to_rgb

    source = open_image(request.inputs[name], "style image" if name == "style" else "image")
    return {"source": source, "rgb": to_rgb(source)}


def _about(opened: dict[str, Any], name: str = "image") -> dict[str, Any]:
    """What ``run.json`` records of an image input: its mode and size."""
    source = opened["source"]
    size = "size" if name == "image" else f"{name}_size"
    return {f"{name}_mode": source.mode, size: list(source.size)}


# decompose -------------------------------------------------------------------------------------


def _prepare_decompose(request: Request) -> dict[str, Any]:
    from ..layers import check_prompts

    check_prompts(request.inputs["fg"], request.inputs["bg"])
    return _image(request)


def _run_decompose(backend, request: Request, opened, seed: int, disable) -> RunResult:
    from .decompose import decompose_image

    prompts = [*request.inputs["fg"], request.inputs["bg"]]
    layers = decompose_image(
        backend, opened["rgb"], prompts, seed=seed, config=request.config, disable=disable
    )
    return RunResult(layers, _about(opened))


# inpaint ---------------------------------------------------------------------------------------


def _prepare_inpaint(request: Request) -> dict[str, Any]:
    from ..io import load_mask

    opened = _image(request)
    opened["fill"] = load_mask(request.inputs["mask"], opened["source"].size)
    return opened


def _inpaint_inputs(opened) -> dict[str, Any]:
    fill = opened["fill"]
    fraction = sum(fill.histogram()[128:]) / (fill.width * fill.height)
    return {**_about(opened), "mask_fill_fraction": round(fraction, 6)}


def _run_inpaint(backend, request: Request, opened, seed: int, disable) -> RunResult:
    from .inpaint import inpaint

    result = inpaint(
        backend,
        request.inputs["image"],
        request.inputs["mask"],
        config=request.config,
        seed=seed,
        disable_progress=disable,
    )
    return RunResult(result, _inpaint_inputs(opened))


def _run_inpaint_batch(backend, requests: list[Request], opened, seed: int, disable):
    """Several images of one size as one denoiser batch (:func:`.inpaint.inpaint_batch`)."""
    from .inpaint import inpaint_batch

    first = requests[0]
    results = inpaint_batch(
        backend,
        [r.inputs["image"] for r in requests],
        [r.inputs["mask"] for r in requests],
        config=first.config,
        seed=seed,
        disable_progress=disable,
    )
    return [RunResult(r, _inpaint_inputs(o)) for r, o in zip(results, opened, strict=True)]


@dataclass(frozen=True)
class InpaintSettings:
    """How a folder of images is inpainted (not what: left out of the fingerprint)."""

    batch_images: int = option(
        1,
        "Folder or glob: inpaint up to B images of one size as one denoiser batch (with "
        "--restarts 0 and no --tile; results differ from one-at-a-time runs by the network's "
        "rounding, which the sampler amplifies).",
        ge=1,
    )

    def __post_init__(self) -> None:
        check_fields(self)


def inpaint_work(backend, opened, config) -> tuple[int, int]:
    from .inpaint import work_size_for

    return work_size_for(backend, opened["source"].size, config)


# superres --------------------------------------------------------------------------------------


def _run_superres(backend, request: Request, opened, seed: int, disable) -> RunResult:
    from .superres import superres

    result = superres(
        backend, opened["rgb"], config=request.config, seed=seed, disable_progress=disable
    )
    return RunResult(result, _about(opened))


def superres_work(backend, opened, config) -> tuple[int, int]:
    from .tiles import round_up

    step = math.lcm(backend.size_multiple, config.scale)
    return tuple(round_up(s * config.scale, step) for s in opened["rgb"].size)


# style -----------------------------------------------------------------------------------------


def _prepare_style(request: Request) -> dict[str, Any]:
    from ..constraints.clip_style import load_clip
    from ..models import select_device

    if not request.config.prompt.strip():
        raise InputError("prompt: describe what to generate")
    opened = _image(request, "style")
    config = request.config
    opened["clip"] = load_clip(
        config.clip, config.clip_model, device=select_device(request.model.device)
    )
    return opened


def _run_style(backend, request: Request, opened, seed: int, disable) -> RunResult:
    from .style import stylize

    result = stylize(
        backend,
        opened["rgb"],
        config=request.config,
        clip=opened["clip"],
        seed=seed,
        disable_progress=disable,
    )
    return RunResult(result, _about(opened, "style"))


# a constraint by name --------------------------------------------------------------------------


def _prepare_constraint(request: Request) -> dict[str, Any]:
    from .constraint import one_image_constraint

    one_image_constraint(request.inputs["name"])
    return _image(request)


def _run_constraint(backend, request: Request, opened, seed: int, disable) -> RunResult:
    from .constraint import run_constraint

    result = run_constraint(
        backend,
        request.inputs["name"],
        opened["rgb"],
        arguments=dict(request.inputs.get("arguments", ())),
        config=request.config,
        seed=seed,
        disable_progress=disable,
    )
    return RunResult(result, {"task": request.inputs["name"], **_about(opened)})


IMAGE = Input("image", "image", "The input image.", positional=True)

TASKS: dict[str, Task] = {
    task.name: task
    for task in (
        Task(
            "decompose",
            "Split IMAGE into layers (each --fg, front first, and --bg) with their masks; write "
            "them to OUTPUT.\n\nIMAGE is a file, a folder or a glob (one sub-folder of OUTPUT "
            "per image); under torchrun or accelerate launch the images are shared among the "
            "processes.",
            DecomposeConfig,
            (
                Input("image", "image", "The image, a folder or a glob.", positional=True),
                Input(
                    "fg",
                    "prompts",
                    "Prompt of a foreground layer; repeat it for more layers, the front one "
                    "first (at most 7).",
                ),
                Input("bg", "prompt", "Prompt of the background layer."),
            ),
            "folder",
            "Output folder (one sub-folder per image for a folder or glob).",
            _prepare_decompose,
            _run_decompose,
            many=True,
        ),
        Task(
            "inpaint",
            "Fill the white region of MASK in IMAGE; write OUTPUT and OUTPUT.json.\n\nIMAGE "
            "may be a folder or a glob (OUTPUT is then a folder); under torchrun or accelerate "
            "launch its images are shared among the processes.",
            InpaintConfig,
            (
                Input("image", "image", "The image, a folder or a glob.", positional=True),
                Input(
                    "mask",
                    "mask",
                    "Mask image, same size: white = region to fill, black = keep. For a folder "
                    "or glob: one mask for every image, or a folder of masks named as the images.",
                ),
            ),
            "image",
            "Output image (PNG); OUTPUT with .json receives the run's metadata. For a folder "
            "or glob: a folder that receives NAME.png and NAME.json per image, and "
            "manifest.jsonl.",
            _prepare_inpaint,
            _run_inpaint,
            many=True,
            settings=InpaintSettings,
            run_batch=_run_inpaint_batch,
        ),
        Task(
            "superres",
            "Upscale IMAGE SCALE times; write OUTPUT and OUTPUT.json.",
            SuperresConfig,
            (IMAGE,),
            "image",
            "Output image (PNG), SCALE times the input; OUTPUT with .json receives the metadata.",
            _image,
            _run_superres,
        ),
        Task(
            "style",
            "Generate --prompt in the style of the --style image; write OUTPUT and OUTPUT.json.",
            StyleConfig,
            (Input("style", "image", "The style reference image."),),
            "image",
            "Output image (PNG); OUTPUT with .json receives the metadata.",
            _prepare_style,
            _run_style,
        ),
        Task(
            "constrain",
            "Sample under the constraint NAME built from IMAGE; write OUTPUT and OUTPUT.json.",
            ConstraintConfig,
            (
                Input("name", "name", "A registered constraint.", positional=True),
                IMAGE,
                Input(
                    "arguments",
                    "arguments",
                    "A keyword argument of the constraint, KEY=VALUE (repeatable).",
                    required=False,
                ),
            ),
            "image",
            "Output image (PNG), the input's size; OUTPUT with .json receives the metadata.",
            _prepare_constraint,
            _run_constraint,
        ),
    )
}
"""Every task by name."""

WORK_SIZES = {"inpaint": inpaint_work, "superres": superres_work}
"""The work size (w, h) of the tasks that may run far above the model's native size."""


__all__ = ["TASKS", "WORK_SIZES"]
