"""Helpers of the server tests: images (a toy disk, a decompression bomb), requests, polling."""

from __future__ import annotations

import io
import struct
import threading
import time
import zlib

import torch
from PIL import Image

from tests.layerdecomp.toy_backend import ToyBackend, disk_image

FAST = {"updates": "2", "samples": "2", "iters": "1", "runs": "2", "seed": "3"}
"""Small settings: a toy run takes a fraction of a second."""


def disk_png() -> bytes:
    """The toy model's red disk on blue, 16×16, as PNG bytes."""
    image, _ = disk_image()
    data = ((image[0].permute(1, 2, 0) + 1) * 127.5).round().to(torch.uint8).numpy()
    buffer = io.BytesIO()
    Image.fromarray(data).save(buffer, format="PNG")
    return buffer.getvalue()


def tiny_png(width: int, height: int) -> bytes:
    """A grey image of ``width``×``height`` as PNG bytes (a degenerate input, say 1×1)."""
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (128, 128, 128)).save(buffer, format="PNG")
    return buffer.getvalue()


def bomb_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A tiny PNG whose header claims ``width``×``height`` (a decompression bomb)."""
    buffer = io.BytesIO()
    Image.new("L", (1, 1)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    start = 8 + 8  # signature, then IHDR's length and type
    data[start : start + 8] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[12 : start + 13]))  # type + the 13 bytes of IHDR data
    data[start + 13 : start + 17] = struct.pack(">I", crc)
    return bytes(data)


def upload(png: bytes | None = None, name: str = "disk.png", **fields):
    """``files`` and ``data`` for a request: the image and the fields (FAST, overridden)."""
    data = {"fg": "red", "bg": "blue", **FAST, **fields}
    data = {k: v for k, v in data.items() if v is not None}
    files = {"image": (name, disk_png() if png is None else png, "image/png")}
    return {"files": files, "data": data}


def wait_for(client, job_id: str, timeout: float = 60.0) -> dict:
    """Poll ``GET /api/jobs/{id}`` until the run is done or failed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/jobs/{job_id}").json()
        if job["state"] in ("done", "failed"):
            return job
        time.sleep(0.02)
    raise AssertionError(f"run {job_id} did not finish in {timeout}s: {job}")


class GatedBackend(ToyBackend):
    """The toy model, whose denoiser waits for ``gate`` (to hold a run while others queue)."""

    def __init__(self):
        super().__init__()
        self.gate = threading.Event()

    def denoiser(self, *args, **kwargs):
        self.gate.wait(timeout=60)
        return super().denoiser(*args, **kwargs)
