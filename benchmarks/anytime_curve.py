"""The layer engine's anytime curve: quality against work, per engine and model (#41).

Each point is one engine (``--engine NAME=FLAGS``: ``decompose_quality.py``'s engine flags, an
empty string for the defaults) stopped after U mask updates (``--updates 3 6 12``) on the held-out
composites of one model (``--model``, repeatable). Its quality comes from
``decompose_quality.py`` (the mean IoU of the engine's mask and of the default matted output, and
the share of images below IoU 0.5); its work from ``task_flops.py`` (the UNet sample-forwards and
VAE decodes of one SD 1.5 image at 512² with the same options, every update run) and the mean CPU
seconds per composite of the quality run. Stopping after U updates is what the engine gives when
asked for U updates (the same draws up to there), so U = 3, 6, 12 trace one run's quality as it
goes.

Every point's rows are kept in ``--cache`` (``<model>__<engine>__u<U>.json``, the format of
``decompose_quality.py --rows``) and reused, so a point costs its quality run once; a rows file
made by ``decompose_quality.py`` with the same flags, composites and ``--updates`` may be put
there by hand. Prints a markdown table; ``--plot FILE`` draws IoU and the failure share against
UNet sample-forwards (matplotlib).

    python benchmarks/anytime_curve.py --engine default= --engine "fast=--runs 2 --samples 2" \\
        --model mini --model PATH/TO/mini-gpu-wide --n 30 --updates 3 6 12 \\
        --cache rows/ --plot docs/anytime.png
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import decompose_quality as quality  # noqa: E402
import task_flops  # noqa: E402
from _common import model_list  # noqa: E402
from _config_args import add_config_arguments, config_overrides  # noqa: E402
from _layer_report import FAILURE  # noqa: E402

from layerdecomp.layers import DecomposeConfig  # noqa: E402


def engine_options(flags: str) -> dict:
    """The decomposition options that ``decompose_quality.py``'s engine ``flags`` set, by name."""
    parser = argparse.ArgumentParser(exit_on_error=False)
    names = add_config_arguments(parser, DecomposeConfig, ("matting",))
    return config_overrides(parser.parse_args(shlex.split(flags)), names)


def point_rows(cache: Path, model: str, engine: str, flags: str, updates: int, args) -> list:
    """The composites' rows of one point, from the cache or computed (and cached)."""
    name = Path(model).name
    where = cache / f"{name}__{engine}__u{updates}.json"
    if not where.exists():
        cache.mkdir(parents=True, exist_ok=True)
        argv = ["--model", model, "--n", str(args.n), "--first", str(args.first)]
        argv += ["--no-baselines", "--rows", str(where), "--updates", str(updates)]
        quality.main(argv + shlex.split(flags))
    (rows,) = json.loads(where.read_text()).values()
    return rows


def point(rows: list[dict], counts: dict[str, int]) -> dict:
    """One point's figures: work per SD 1.5 image and CPU seconds per composite, quality."""
    return {
        "forward": counts["forward"],
        "decode": counts.get("decode", 0),
        "seconds": statistics.mean(r["seconds"] for r in rows),
        "iou": statistics.mean(r["iou"] for r in rows),
        "matted_iou": statistics.mean(r["matted_iou"] for r in rows),
        "below": sum(r["iou"] < FAILURE for r in rows) / len(rows),
        "matted_below": sum(r["matted_iou"] < FAILURE for r in rows) / len(rows),
        "n": len(rows),
    }


def plot(table: list[dict], path: Path) -> None:
    """IoU (engine and matted) and the share below 0.5 against UNet sample-forwards."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    keys = sorted({(p["model"], p["engine"]) for p in table})
    for colour, key in enumerate(keys):
        line = [p for p in table if (p["model"], p["engine"]) == key]
        line.sort(key=lambda p: p["forward"])
        x, c = [p["forward"] for p in line], f"C{colour}"
        label = f"{key[1]}, {key[0]}"
        left.plot(x, [p["matted_iou"] for p in line], "o-", color=c, label=f"{label}: output")
        left.plot(x, [p["iou"] for p in line], "x--", color=c, label=f"{label}: engine")
        right.plot(x, [p["below"] for p in line], "o-", color=c, label=label)
    left.set(xlabel="UNet sample-forwards per SD 1.5 512² image", ylabel="mean IoU")
    right.set(xlabel="UNet sample-forwards per SD 1.5 512² image",
              ylabel=f"share of images with engine IoU < {FAILURE}")  # fmt: skip
    left.legend(fontsize=7)
    right.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", action="append", required=True, help="NAME=FLAGS")
    parser.add_argument("--model", action="append", help="a model (repeatable; default mini)")
    parser.add_argument("--updates", type=int, nargs="+", default=[3, 6, 12])
    parser.add_argument("--n", type=int, default=30, help="composites per point")
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--cache", type=Path, required=True, help="the points' rows files")
    parser.add_argument("--plot", type=Path, help="draw the curve to this PNG")
    args = parser.parse_args(argv)
    engines = dict(e.split("=", 1) for e in args.engine)
    table = []
    for model in model_list(args.model):
        for engine, flags in engines.items():
            for updates in args.updates:
                options = {**engine_options(flags), "updates": updates}
                counts = task_flops.call_counts("decompose", **options)
                rows = point_rows(args.cache, model, engine, flags, updates, args)
                table.append({"model": Path(model).name, "engine": engine, "updates": updates,
                              **point(rows, counts)})  # fmt: skip
    print("| model | engine | updates | UNet samples | decodes | CPU s | IoU engine | IoU output "
          f"| engine < {FAILURE} | output < {FAILURE} | n |")  # fmt: skip
    print("| --- " * 11 + "|")
    for p in table:
        print(f"| {p['model']} | {p['engine']} | {p['updates']} | {p['forward']} | {p['decode']} "
              f"| {p['seconds']:.1f} | {p['iou']:.3f} | {p['matted_iou']:.3f} | {p['below']:.3f} "
              f"| {p['matted_below']:.3f} | {p['n']} |")  # fmt: skip
    if args.plot:
        plot(table, args.plot)


if __name__ == "__main__":
    main()
