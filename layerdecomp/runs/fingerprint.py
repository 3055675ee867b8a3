"""The fingerprint of an output: everything that decides its result, recorded in its metadata.

A fingerprint is a flat JSON object: the sha256 of each input file's bytes (``image sha256``,
``mask sha256``), every option of the command that shapes the result under its command-line name
(``--fg``, ``--steps``, ``--seed``, ``--model``, ``--dtype`` as resolved: ``auto`` becomes
``float32`` or ``float16``), and the ``layerdecomp`` version. Options that only say where or how
loudly a run happens (``--output``, ``--device``, ``--quiet``, ``--overwrite``,
``--batch-images``, ``--allow-pickle``) are left out. The model enters as its spec, its
``--model-config`` and the precision; the weights at a path are not hashed (a checkpoint replaced
in place is not noticed).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import click

NOT_DECIDING = frozenset(
    {"image", "mask", "output", "device", "quiet", "overwrite", "batch_images", "allow_pickle"}
)
"""Parameters of a command that do not change its result."""

SEED = "--seed"


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """The sha256 of a file's bytes, as hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def versions(*extra: str) -> dict[str, str]:
    """The versions of this package and the libraries that shape its results (for ``run.json``),
    and of the ``extra`` packages a caller names (the server adds ``fastapi``)."""
    out = {}
    for name in ("layerdecomp", "torch", "diffusers", "transformers", *extra):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "unknown"
    return out


def package_version() -> str:
    try:
        return version("layerdecomp")
    except PackageNotFoundError:
        return "unknown"


def option_names(command: click.Command) -> dict[str, str]:
    """Parameter name → the name a user types (its longest flag: ``iterations`` → ``--iters``)."""
    names = {}
    for param in command.params:
        flags = [o for o in param.opts if o.startswith("--")] or list(param.opts)
        names[param.name] = max(flags, key=len) if flags else param.name
    return names


def _plain(value: Any) -> Any:
    """``value`` as JSON gives it back (tuples become lists, paths text)."""
    return json.loads(json.dumps(value, default=str))


def fingerprint(
    command: click.Command,
    params: Mapping[str, Any],
    inputs: Mapping[str, str | os.PathLike],
    *,
    seed: int,
    dtype: str,
    hashes: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The fingerprint of one output of ``command`` run with ``params`` on ``inputs``.

    Args:
        command: the click command (for the names its options go by).
        params: the command's parameters (as its callback receives them).
        inputs: what each input file is (``{"image": path, "mask": path}``); hashed unless
            ``hashes`` already holds it.
        seed: the seed the output is made with (given or drawn).
        dtype: the precision the model runs in, resolved.
    """
    hashes = dict(hashes or {})
    names = option_names(command)
    out: dict[str, Any] = {}
    for what, path in inputs.items():
        out[f"{what} sha256"] = hashes.get(what) or file_sha256(path)
    for name, value in params.items():
        if name in NOT_DECIDING or name in ("seed", "dtype"):
            continue
        out[names.get(name, f"--{name.replace('_', '-')}")] = value
    out[SEED] = int(seed)
    out["--dtype"] = dtype
    out["layerdecomp"] = package_version()
    return _plain(out)


def _show(value: Any) -> str:
    """A recorded value as a user would type it (a repeated option: its values in turn)."""
    return " ".join(map(repr, value)) if isinstance(value, list) else repr(value)


def difference(
    recorded: Mapping[str, Any] | None, current: Mapping[str, Any], ignore: Iterable[str] = ()
) -> str | None:
    """What makes ``recorded`` another run than ``current`` (the first difference, in words), or
    ``None`` when they match on every key of ``current`` but those in ``ignore``."""
    if not isinstance(recorded, Mapping):
        return "made without a fingerprint (by an older layerdecomp, or not by it)"
    skip = set(ignore)
    for key, value in current.items():
        if key in skip or (key in recorded and recorded[key] == value):
            continue
        if key not in recorded:
            return f"made without {key}"
        old = recorded[key]
        if key.endswith(" sha256"):
            what = key.removesuffix(" sha256")
            return f"made from another {what} (sha256 {str(old)[:12]}…, now {str(value)[:12]}…)"
        if key == "layerdecomp":
            return f"made by layerdecomp {old}, not {value}"
        return f"made with {key} {_show(old)}, not {_show(value)}"
    return None


__all__ = [
    "NOT_DECIDING",
    "SEED",
    "difference",
    "file_sha256",
    "fingerprint",
    "option_names",
    "package_version",
    "versions",
]
