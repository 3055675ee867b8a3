"""``layerdecomp run`` (recipes) and ``layerdecomp constraints`` (the registry).

``run RECIPE [KEY=VALUE ...]`` runs a recipe (:mod:`layerdecomp.recipes`) through the command of
its task, or, for a constraint name, through the generic constraint task.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import click

from .cli import load_backend, main
from .cli_tasks import RECIPE_META, _finish, style, superres
from .errors import InputError

# ---------------------------------------------------------------------- run


def _path(value: str | None) -> Path | None:
    return None if value is None else Path(value)


def _add_recipe(json_path: Path, recipe: dict[str, Any]) -> None:
    """Record the recipe in metadata written by a command that does not know about recipes."""
    if not json_path.is_file():
        return
    data = json.loads(json_path.read_text(encoding="utf-8"))
    data["recipe"] = recipe
    handle, temp = tempfile.mkstemp(prefix=f".{json_path.name}.", dir=json_path.parent)
    with os.fdopen(handle, "w", encoding="utf-8") as f:
        f.write(json.dumps(data, indent=2, default=str) + "\n")
    os.chmod(temp, json_path.stat().st_mode & 0o777)
    os.replace(temp, json_path)


def _model_kwargs(p: dict[str, Any]) -> dict[str, Any]:
    return dict(
        model=p["model"],
        model_config=_path(p["model_config"]),
        allow_pickle=p["allow_pickle"],
        seed=p["seed"],
        device=p["device"],
        dtype=p["dtype"],
        quiet=p["quiet"],
    )


def _run_inpaint(ctx, p, recipe):
    from .cli import inpaint

    ctx.invoke(
        inpaint,
        image=Path(p["image"]),
        mask_path=Path(p["mask"]),
        output=Path(p["output"]),
        prompt=p["prompt"],
        negative_prompt=p["negative_prompt"],
        guidance=p["guidance"],
        steps=p["steps"],
        iters=p["iterations"],
        direction=p["direction"],
        restarts=p["restarts"],
        paste_back=p["paste_back"],
        **_model_kwargs(p),
    )
    _add_recipe(Path(p["output"]).with_suffix(".json"), recipe)


def _run_decompose(ctx, p, recipe):
    from .cli_decompose import decompose
    from .layers import DecomposeConfig

    options = {k: v for k, v in p.items() if k in DecomposeConfig.__dataclass_fields__}
    try:
        DecomposeConfig(**options)
    except ValueError as exc:
        raise InputError(f"recipe {recipe['name']!r}: {exc}") from None
    ctx.invoke(
        decompose,
        image=p["image"],
        fg_prompt=p["fg"],
        bg_prompt=p["bg"],
        output=Path(p["output"]),
        **_model_kwargs(p),
        **options,
    )
    _add_recipe(Path(p["output"]) / "run.json", recipe)


def _run_superres(ctx, p, recipe):
    ctx.invoke(
        superres,
        image=Path(p["image"]),
        output=Path(p["output"]),
        scale=str(p["scale"]),
        method=p["method"],
        prompt=p["prompt"],
        negative_prompt=p["negative_prompt"],
        guidance=p["guidance"],
        steps=p["steps"],
        iters=p["iterations"],
        lam=p["lam"],
        perturbation=p["perturbation"],
        restarts=p["restarts"],
        direction=p["direction"],
        **_model_kwargs(p),
    )


def _run_style(ctx, p, recipe):
    ctx.invoke(
        style,
        style_path=Path(p["style"]),
        prompt=p["prompt"],
        output=Path(p["output"]),
        negative_prompt=p["negative_prompt"],
        guidance=p["guidance"],
        steps=p["steps"],
        iters=p["iterations"],
        lam_start=p["lam_start"],
        lam_end=p["lam_end"],
        clip=p["clip"],
        clip_model=p["clip_model"],
        block=p["block"],
        width=p["width"],
        height=p["height"],
        restarts=p["restarts"],
        direction=p["direction"],
        **_model_kwargs(p),
    )


def _run_constraint(ctx, p, recipe):
    """The generic task: the input image becomes the constraint ``recipe.task``."""
    from kornia.geometry.transform import resize

    from .constraints import get
    from .generate import generate, round_up
    from .io import check_output_path, image_to_tensor, open_image, to_rgb

    started = time.perf_counter()
    name = recipe["task"]
    cls = get(name)
    output = check_output_path(p["output"])
    source = open_image(p["image"], "image")
    rgb = to_rgb(source)
    backend = load_backend(
        p["model"], _path(p["model_config"]), p["allow_pickle"], p["device"], p["dtype"]
    )
    loaded = time.perf_counter()
    multiple = backend.size_multiple
    work = (round_up(rgb.width, multiple), round_up(rgb.height, multiple))
    pixels = image_to_tensor(rgb)
    if work != rgb.size:
        pixels = resize(pixels, (work[1], work[0]), interpolation="bicubic", antialias=True)
    pixels = pixels.to(backend.device)
    arguments = p["constraint"]
    factory = getattr(cls, "from_image", None)
    try:
        if factory is not None:
            constraint = factory(pixels, codec=backend, **arguments)
        else:
            constraint = cls(image=pixels, codec=backend, **arguments)
    except (TypeError, ValueError) as exc:
        raise InputError(f"constraint {name!r}: cannot be built from the image ({exc})") from None
    result = generate(
        backend,
        constraint,
        work,
        size=rgb.size,
        prompt=p["prompt"],
        negative_prompt=p["negative_prompt"],
        guidance=p["guidance"],
        steps=p["steps"],
        iterations=p["iterations"],
        direction=p["direction"],
        seed=p["seed"],
        restarts=p["restarts"],
        disable_progress=True if p["quiet"] else None,
        parameters={"constraint": name, "constraint_arguments": arguments},
        lam=p["lam"],
        lam_start=p["lam_start"],
        lam_end=p["lam_end"],
        perturbation=p["perturbation"],
    )
    _finish(
        "run",
        result,
        backend,
        output,
        started,
        loaded,
        {"task": name, "image": str(p["image"]), "image_mode": source.mode, "size": list(rgb.size)},
        {k: p[k] for k in ("model", "model_config", "allow_pickle", "device", "dtype", "quiet")},
        p["quiet"],
    )


_RUNNERS = {
    "inpaint": _run_inpaint,
    "decompose": _run_decompose,
    "superres": _run_superres,
    "style": _run_style,
}


@main.command("run", context_settings={"ignore_unknown_options": True})
@click.argument("recipe")
@click.argument("overrides", nargs=-1)
@click.option("--dry-run", is_flag=True, help="Print the resolved parameters as JSON and stop.")
@click.pass_context
def run(ctx, recipe, overrides, dry_run):
    """Run RECIPE (a name in recipes/, a TOML file, or a constraint) with KEY=VALUE overrides.

    Example: layerdecomp run superres image=small.png output=large.png scale=8
    """
    from .recipes import load_recipe

    loaded = load_recipe(recipe).override(overrides)
    parameters = loaded.resolve()
    if dry_run:
        click.echo(json.dumps({"task": loaded.task, "parameters": parameters}, indent=2))
        return
    record = loaded.to_dict()
    ctx.meta[RECIPE_META] = record
    _RUNNERS.get(loaded.task, _run_constraint)(ctx, parameters, record)


# ---------------------------------------------------------------------- constraints


def _origins() -> dict[str, str]:
    origins = {}
    from .constraints import ENTRY_POINT_GROUP

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(ep, "dist", None)
        origins[ep.name] = f"{dist.name} {dist.version}" if dist is not None else ep.value
    return origins


@main.command("constraints")
def list_constraints():
    """List every registered constraint, built-in or plugin, with its description."""
    from .constraints import available

    known = available()
    origins = _origins()
    width = max(len(name) for name in known)
    for name, cls in known.items():
        if cls.__module__.startswith("layerdecomp."):
            origin = "built-in"
        else:
            origin = origins.get(name, cls.__module__)
        click.echo(f"{name:<{width}}  {cls.description()}  [{origin}]")


__all__ = ["list_constraints", "run"]
