"""The fingerprint of an output: everything that decides its result, recorded in its metadata.

A fingerprint is a flat JSON object built from the task's declaration
(:class:`~layerdecomp.tasks.declare.Request`): the sha256 of each input file's bytes
(``image sha256``, ``mask sha256``), the other inputs (the prompts), every option of the task
under its one name, the model options that shape the result (``model``, ``model_config``,
``compile``; ``dtype`` as resolved: ``auto`` becomes ``float32`` or ``float16``), the seed and
the ``layerdecomp`` version. What only says where or how loudly a run happens (the output,
``device``, ``quiet``, ``overwrite``, ``batch_images``, ``allow_pickle``) is left out, and an
earlier name of an option can never appear (it is refused before).

LoRA adapters enter by their content (:func:`lora_fingerprint`: ``SHA256:SCALE`` each, the
sha256 of the weights' bytes): a LoRA retrained into the same file makes another run, the same
file copied elsewhere the same one; their paths are in ``run.json``'s ``parameters`` and
``model``. The model's own weights at a path are not hashed (a checkpoint replaced in place is
not noticed).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from importlib.metadata import PackageNotFoundError, version
from typing import Any

SEED = "seed"
LORA = "lora"


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


def lora_fingerprint(entries: Iterable[str], allow_pickle: bool = False) -> list[str]:
    """What decides each LoRA entry's effect, ``SHA256:SCALE``: the sha256 of its file's bytes
    (of a folder: of its weights files' names and hashes, in order) and its scale as a number
    (``a:0.80`` and ``b:0.8`` holding the same bytes are the same). The path does not enter.

    Raises:
        ModelSpecError: a malformed entry, a missing path or a pickle file (as loading says).
    """
    from ..models.lora import Lora, weight_files

    out = []
    for entry in entries:
        lora = Lora.parse(entry)
        files = weight_files(lora, allow_pickle)
        if len(files) == 1:
            digest = file_sha256(files[0])
        else:
            lines = "".join(f"{f.name}\t{file_sha256(f)}\n" for f in files)
            digest = hashlib.sha256(lines.encode()).hexdigest()
        out.append(f"{digest}:{lora.scale!r}")
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
    lora: Iterable[str] | None = None,
) -> dict[str, Any]:
    """The fingerprint of one output of the task ``request`` asks for, made from ``inputs``.

    Args:
        request: the checked request (:class:`~layerdecomp.tasks.declare.Request`).
        inputs: what each input file is (``{"image": path, "mask": path}``); hashed unless
            ``hashes`` already holds it.
        seed: the seed the output is made with (given or drawn).
        dtype: the precision the model runs in, resolved.
        lora: :func:`lora_fingerprint` of the request's LoRA entries, when already made (a
            folder run hashes them once); else they are hashed here.
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
    model = request.model
    out.update({name: getattr(model, name) for name in DECIDING if name not in ("dtype", LORA)})
    out[LORA] = list(lora_fingerprint(model.lora, model.allow_pickle) if lora is None else lora)
    out[SEED] = int(seed)
    out["dtype"] = dtype
    out["layerdecomp"] = package_version()
    return _plain(out)


def _show(value: Any) -> str:
    """A recorded value as a user would type it (a repeated option: its values in turn)."""
    return " ".join(map(repr, value)) if isinstance(value, list) else repr(value)


def _loras(value: Any) -> str:
    """Recorded LoRA entries in short: ``sha256 0123456789ab…:0.8`` each (``none``)."""
    items = value if isinstance(value, list) else [value]
    shown = []
    for item in items:
        digest, _, scale = str(item).rpartition(":")
        short = len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)
        shown.append(f"sha256 {digest[:12]}…:{scale}" if short else repr(item))
    return " ".join(shown) or "none"


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
        if key == LORA:
            return f"made with other LoRA adapters ({_loras(old)}, now {_loras(value)})"
        if key == "layerdecomp":
            return f"made by layerdecomp {old}, not {value}"
        return f"made with {key} {_show(old)}, not {_show(value)}"
    return None


__all__ = [
    "SEED",
    "difference",
    "file_sha256",
    "fingerprint",
    "lora_fingerprint",
    "package_version",
    "versions",
]
