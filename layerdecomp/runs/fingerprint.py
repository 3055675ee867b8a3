"""The fingerprint of an output: everything that decides its result, recorded in its metadata.

A fingerprint is a flat JSON object built from the task's declaration
(:class:`~layerdecomp.tasks.declare.Request`): the sha256 of each input file's bytes
(``image sha256``, ``mask sha256``), the other inputs (the prompts), every option of the task
under its one name, the model options that shape the result (``model``, ``model_config``,
``compile``; ``dtype`` as resolved: ``auto`` becomes ``float32`` or ``float16``), the seed and
the ``layerdecomp`` version. What only says where or how loudly a run happens (the output,
``device``, ``quiet``, ``overwrite``, ``batch_images``, ``allow_pickle``) is left out, and an
earlier name of an option can never appear (it is refused before). The weights at a path are not
hashed (a checkpoint replaced in place is not noticed).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from importlib.metadata import PackageNotFoundError, version
from typing import Any

SEED = "seed"


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


def _plain(value: Any) -> Any:
    """``value`` as JSON gives it back (tuples become lists, paths text)."""
    return json.loads(json.dumps(value, default=str))


def fingerprint(
    request: Any,
    inputs: Mapping[str, str | os.PathLike],
    *,
    seed: int,
    dtype: str,
    hashes: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The fingerprint of one output of the task ``request`` asks for, made from ``inputs``.

    Args:
        request: the checked request (:class:`~layerdecomp.tasks.declare.Request`).
        inputs: what each input file is (``{"image": path, "mask": path}``); hashed unless
            ``hashes`` already holds it.
        seed: the seed the output is made with (given or drawn).
        dtype: the precision the model runs in, resolved.
    """
    from ..models.options import DECIDING
    from ..options import as_dict

    hashes = dict(hashes or {})
    out: dict[str, Any] = {}
    for what, path in inputs.items():
        out[f"{what} sha256"] = hashes.get(what) or file_sha256(path)
    for spec in request.task.inputs:
        if not spec.is_file and spec.name in request.inputs:
            out[spec.name] = request.inputs[spec.name]
    out.update(as_dict(request.config))
    out.update({name: getattr(request.model, name) for name in DECIDING if name != "dtype"})
    out[SEED] = int(seed)
    out["dtype"] = dtype
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
    "SEED",
    "difference",
    "file_sha256",
    "fingerprint",
    "package_version",
    "versions",
]
