"""Runs over many images: data parallel across processes, and resumable.

- :mod:`.shards`: rank, world and device from the launcher's environment (``torchrun``,
  ``accelerate launch``), each process's shard, and what the processes agree on (gloo).
- :mod:`.inputs`: the images of a folder or glob, sorted, and their outputs and masks.
- :mod:`.fingerprint`: what decides an output (input hashes, options, model, seed, version).
- :mod:`.manifest`: ``manifest.jsonl``, one line per image and run.
- :mod:`.folder`: the loop ``decompose`` and ``inpaint`` share: skip, redo or refuse each
  output, clean a killed run's leftovers, work, record.
"""

from .fingerprint import difference, file_sha256, fingerprint
from .folder import Item, Outcome, Task, leftovers, made_otherwise, run_folder
from .inputs import image_files, masks_for, outputs_by_stem
from .manifest import MANIFEST, Manifest, merge, read
from .shards import Group, Ranks, device_for, shard

__all__ = [
    "MANIFEST",
    "Group",
    "Item",
    "Manifest",
    "Outcome",
    "Ranks",
    "Task",
    "device_for",
    "difference",
    "file_sha256",
    "fingerprint",
    "image_files",
    "leftovers",
    "made_otherwise",
    "masks_for",
    "merge",
    "outputs_by_stem",
    "read",
    "run_folder",
    "shard",
]
