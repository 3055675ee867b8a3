"""Test-wide settings and the shared fixtures: never reach a model hub.

- Tiny pipelines (SD 1.x, SD 2.x, SDXL, pixel DDPM, an SD 1.x single file) built in code by
  ``tests/layerdecomp/tiny_pipelines.py``, and SD 3 and Flux by
  ``tests/layerdecomp/tiny_flow_pipelines.py``, saved once per session with ``save_pretrained``.
- ``one_thread``: tests that run networks use one torch thread (on a shared 2-core machine a
  thread pool fighting other processes is ~100× slower).
- The CLI helpers: ``cli`` runs ``layerdecomp`` in-process (click's runner), ``one_line_error``
  checks the one-line error contract, ``no_outputs`` that nothing was left behind.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture
def cli():
    """``cli(*args)``: run ``layerdecomp ARGS`` in-process; returns click's ``Result``."""
    from click.testing import CliRunner

    from layerdecomp.cli import main

    return lambda *args: CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture
def one_line_error():
    """``one_line_error(result, code, *fragments)``: exit ``code``, one ``error: …`` line on
    stderr holding every fragment, no traceback."""

    def check(result, code, *fragments):
        assert result.exit_code == code, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
        for fragment in fragments:
            assert fragment in lines[0], lines[0]
        assert "Traceback" not in result.output

    return check


@pytest.fixture
def no_outputs():
    """``no_outputs(folder)``: no file named ``out*`` (nor a temporary ``.out*``) in ``folder``."""

    def check(folder):
        assert [p.name for p in folder.iterdir() if p.name.startswith(("out", ".out"))] == []

    return check


@pytest.fixture
def small_images(tmp_path):
    """A folder with ``small.png`` (3×5 grayscale) and ``ref.png`` (40×30 RGB), random pixels."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (5, 3), dtype=np.uint8), mode="L").save(
        tmp_path / "small.png"
    )
    Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)).save(tmp_path / "ref.png")
    return tmp_path


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
    from tests.layerdecomp.tiny_pipelines import sd_pipeline

    return _saved(tiny_root, "sd1", lambda: sd_pipeline(tiny_root / "tok-sd1"))


@pytest.fixture(scope="session")
def sd2_folder(tiny_root):
    """Tiny SD 2.x (v prediction, linear projections)."""
    from tests.layerdecomp.tiny_pipelines import sd_pipeline

    return _saved(tiny_root, "sd2", lambda: sd_pipeline(tiny_root / "tok-sd2", "v_prediction"))


@pytest.fixture(scope="session")
def sdxl_folder(tiny_root):
    """Tiny SDXL base (two text encoders, pooled embeddings, time ids)."""
    from tests.layerdecomp.tiny_pipelines import sdxl_pipeline

    return _saved(tiny_root, "sdxl", lambda: sdxl_pipeline(tiny_root / "tok-sdxl"))


@pytest.fixture(scope="session")
def pixel_folder(tiny_root):
    """Tiny pixel-space DDPM pipeline (UNet2DModel)."""
    from tests.layerdecomp.tiny_pipelines import pixel_pipeline

    return _saved(tiny_root, "pixel", pixel_pipeline)


@pytest.fixture(scope="session")
def sd1_single_file(tiny_root, sd1_folder):
    """The tiny SD 1.x weights as one .safetensors in the original LDM key layout."""
    from diffusers import StableDiffusionPipeline
    from safetensors.torch import save_file

    from tests.layerdecomp.tiny_pipelines import ldm_state_dict

    path = tiny_root / "sd1-ldm.safetensors"
    if not path.exists():
        pipe = StableDiffusionPipeline.from_pretrained(sd1_folder, safety_checker=None)
        save_file(ldm_state_dict(pipe), str(path))
    return path


@pytest.fixture(scope="session")
def sd3_folder(tiny_root):
    """Tiny Stable Diffusion 3 (two CLIP encoders, T5, patch-2 MMDiT, flow matching, shift 3)."""
    from tests.layerdecomp.tiny_flow_pipelines import sd3_pipeline

    return _saved(tiny_root, "sd3", lambda: sd3_pipeline(tiny_root / "tok-sd3"))


@pytest.fixture(scope="session")
def flux_folder(tiny_root):
    """Tiny Flux (dev-like: guidance embedding; packed latents, resolution-dependent shift)."""
    from tests.layerdecomp.tiny_flow_pipelines import flux_pipeline

    return _saved(tiny_root, "flux", lambda: flux_pipeline(tiny_root / "tok-flux"))
