"""Fixtures for the model backend, inpainting and CLI tests: tiny pipelines saved once per session.

Nothing here runs unless a test asks for it. Tests that run networks use ``one_thread``: on a
shared 2-core machine, torch's thread pool fighting other processes is ~100× slower than one
thread.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture
def one_thread():
    """Run the test with one torch thread, then restore the previous count."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory):
    return tmp_path_factory.mktemp("tiny-models")


def _saved(root, name, build, **save_kwargs):
    folder = root / name
    if not folder.exists():
        previous = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            build().save_pretrained(folder, **save_kwargs)
        finally:
            torch.set_num_threads(previous)
    return folder


@pytest.fixture(scope="session")
def sd1_folder(tiny_root):
    """Tiny SD 1.x (ε prediction, PNDM scheduler config) saved as a diffusers folder."""
    from .tiny_pipelines import sd_pipeline

    return _saved(tiny_root, "sd1", lambda: sd_pipeline(tiny_root / "tok-sd1"))


@pytest.fixture(scope="session")
def sd2_folder(tiny_root):
    """Tiny SD 2.x (v prediction, linear projections)."""
    from .tiny_pipelines import sd_pipeline

    return _saved(tiny_root, "sd2", lambda: sd_pipeline(tiny_root / "tok-sd2", "v_prediction"))


@pytest.fixture(scope="session")
def sdxl_folder(tiny_root):
    """Tiny SDXL base (two text encoders, pooled embeddings, time ids)."""
    from .tiny_pipelines import sdxl_pipeline

    return _saved(tiny_root, "sdxl", lambda: sdxl_pipeline(tiny_root / "tok-sdxl"))


@pytest.fixture(scope="session")
def pixel_folder(tiny_root):
    """Tiny pixel-space DDPM pipeline (UNet2DModel)."""
    from .tiny_pipelines import pixel_pipeline

    return _saved(tiny_root, "pixel", pixel_pipeline)


@pytest.fixture(scope="session")
def sd1_single_file(tiny_root, sd1_folder):
    """The tiny SD 1.x weights as one .safetensors in the original LDM key layout."""
    from diffusers import StableDiffusionPipeline
    from safetensors.torch import save_file

    from .tiny_pipelines import ldm_state_dict

    path = tiny_root / "sd1-ldm.safetensors"
    if not path.exists():
        pipe = StableDiffusionPipeline.from_pretrained(sd1_folder, safety_checker=None)
        save_file(ldm_state_dict(pipe), str(path))
    return path
