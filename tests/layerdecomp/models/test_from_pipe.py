"""The user's own pipeline object: ``load_model(pipe)``, ``from_pipe``, ``Backend.from_pipe``.

The pipeline is used as it is (placement, offload hooks, dtype, adapters): each family runs a
task from its pipeline object exactly as from its folder, and ``mini`` loaded by diffusers gives
bit for bit what ``load_model("mini")`` gives.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import DiffusionPipeline, StableDiffusionImg2ImgPipeline, StableDiffusionPipeline
from PIL import Image

from layerdecomp.errors import ModelSpecError
from layerdecomp.models import (
    MINI_DIR,
    Backend,
    PixelBackend,
    StableDiffusionBackend,
    from_pipe,
    load_model,
)
from layerdecomp.tasks import decompose_image, inpaint

pytestmark = pytest.mark.usefixtures("one_thread")

FAMILIES = {
    "sd1": "StableDiffusionPipeline",
    "sdxl": "StableDiffusionXLPipeline",
    "sd3": "StableDiffusion3Pipeline",
    "flux": "FluxPipeline",
    "pixel": "DDPMPipeline",
}


def _inpainted(backend, prompt: str = "a cat") -> np.ndarray:
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
    mask = Image.new("L", (16, 16), 0)
    mask.paste(255, (4, 4, 12, 12))
    out = inpaint(
        backend,
        image,
        mask,
        prompt=prompt,
        steps=2,
        iters=1,
        seed=3,
        work_side=0,
        disable_progress=True,
    )
    assert out.nfe == 2 * (1 + 2)
    result = np.asarray(out.image)
    keep = np.asarray(mask) == 0
    assert np.array_equal(result[keep], np.asarray(image)[keep])
    return result


@pytest.mark.parametrize("name", list(FAMILIES))
def test_each_family_runs_from_its_pipeline_object_as_from_its_folder(request, name):
    folder = request.getfixturevalue(f"{name}_folder")
    pipe = DiffusionPipeline.from_pretrained(folder)
    backend = load_model(pipe)
    assert backend.pipeline is pipe and type(pipe).__name__ == FAMILIES[name]
    assert backend.device == torch.device("cpu") and backend.dtype == torch.float32
    info = backend.describe()
    assert info["spec"] == f"<{FAMILIES[name]} object>" and info["source"] == "pipeline object"
    assert info["location"] == str(folder)
    prompt = "" if name == "pixel" else "a cat"
    expected = _inpainted(load_model(str(folder), device="cpu"), prompt)
    assert np.array_equal(_inpainted(backend, prompt), expected)


@pytest.fixture(scope="module")
def mini_pipe():
    return StableDiffusionPipeline.from_pretrained(MINI_DIR, dtype=torch.float32)


def test_mini_as_a_diffusers_pipeline_gives_what_mini_gives(mini_pipe):
    """The shipped folder through diffusers' own loader: the same decomposition, bit for bit."""
    root = MINI_DIR.parents[2] / "examples"
    entry = json.loads((root / "examples.json").read_text())[0]
    image = Image.open(root / entry["image"]).convert("RGB")
    settings = dict(seed=2, updates=1, samples=1, runs=1, final_samples=1, matting=False)
    settings |= dict(iters=1, disable=True)
    mine = decompose_image(load_model(mini_pipe), image, entry["fg"], entry["bg"], **settings)
    ours = decompose_image(load_model("mini"), image, entry["fg"], entry["bg"], **settings)
    assert mine.nfe == ours.nfe > 0
    assert torch.equal(mine.images, ours.images) and torch.equal(mine.masks, ours.masks)
    assert load_model(mini_pipe).describe()["location"] == str(MINI_DIR)


def test_mini_half_text_encoder_is_used_as_it_is():
    """Without a dtype, transformers keeps mini's float16 text encoder: not re-cast, recorded."""
    pipe = StableDiffusionPipeline.from_pretrained(MINI_DIR)
    if pipe.text_encoder.dtype == torch.float32:
        pytest.skip("this transformers loads the text encoder in float32")
    backend = load_model(pipe)
    assert pipe.text_encoder.dtype == torch.float16 and backend.dtype == torch.float32
    assert backend.describe()["other_dtypes"] == {"text_encoder": "float16"}


def test_a_conflicting_dtype_is_refused_and_nothing_is_cast(sd1_folder):
    pipe = StableDiffusionPipeline.from_pretrained(sd1_folder)
    with pytest.raises(ModelSpecError) as info:
        load_model(pipe, dtype="float16")
    message = str(info.value)
    assert "dtype float16 asked" in message and "its network is float32" in message
    assert "pipe.to(dtype=" in message and "\n" not in message
    assert all(m.dtype == torch.float32 for m in (pipe.unet, pipe.vae, pipe.text_encoder))
    assert load_model(pipe, dtype="float32").dtype == torch.float32
    assert load_model(pipe, dtype="auto", device="auto").dtype == torch.float32
    half = StableDiffusionPipeline.from_pretrained(sd1_folder, dtype=torch.bfloat16)
    assert load_model(half).dtype == torch.bfloat16 and half.unet.dtype == torch.bfloat16


def test_an_unsupported_pipeline_class_is_refused_in_one_line(sd1_folder):
    pipe = StableDiffusionImg2ImgPipeline(
        **StableDiffusionPipeline.from_pretrained(sd1_folder).components
    )
    with pytest.raises(ModelSpecError) as info:
        load_model(pipe)
    message = str(info.value)
    assert message.startswith("model '<StableDiffusionImg2ImgPipeline object>': ")
    for name in ("StableDiffusionPipeline", "StableDiffusionXLPipeline", "FluxPipeline"):
        assert name in message
    assert "supported:" in message and "\n" not in message


def test_other_objects_and_options_a_pipeline_cannot_take(sd1_folder, tmp_path):
    with pytest.raises(ModelSpecError, match="or a diffusers pipeline object"):
        load_model(42)
    pipe = StableDiffusionPipeline.from_pretrained(sd1_folder)
    with pytest.raises(ModelSpecError, match="^lora: not with a pipeline object"):
        load_model(pipe, lora=["a.safetensors"])
    with pytest.raises(ModelSpecError, match="^config: not with a pipeline object"):
        load_model(pipe, config=tmp_path)
    assert load_model(Path(sd1_folder), device="cpu").spec == str(sd1_folder)


def test_backend_from_pipe_checks_the_class(sd1_folder, pixel_folder):
    pipe = StableDiffusionPipeline.from_pretrained(sd1_folder)
    assert isinstance(Backend.from_pipe(pipe), StableDiffusionBackend)
    assert isinstance(StableDiffusionBackend.from_pipe(pipe, device="cpu"), StableDiffusionBackend)
    pixel = DiffusionPipeline.from_pretrained(pixel_folder)
    assert isinstance(PixelBackend.from_pipe(pixel), PixelBackend)
    with pytest.raises(ModelSpecError, match="makes a PixelBackend, not a StableDiffusionBackend"):
        StableDiffusionBackend.from_pipe(pixel)


def test_the_pipeline_is_frozen_for_inference(sd1_folder):
    pipe = StableDiffusionPipeline.from_pretrained(sd1_folder)
    pipe.unet.train().requires_grad_(True)
    from_pipe(pipe)
    assert not pipe.unet.training and not pipe.text_encoder.training
    modules = (pipe.unet, pipe.vae, pipe.text_encoder)
    assert not any(p.requires_grad for m in modules for p in m.parameters())


def _offload(pipe, how: str) -> None:
    cpu = torch.device("cpu")
    if how == "model":
        pipe.enable_model_cpu_offload(device="cpu")
    else:
        pipe.enable_group_offload(cpu, offload_device=cpu, offload_type="leaf_level")


@pytest.mark.parametrize("how", ["model", "group"])
def test_an_offloaded_pipeline_runs_on_its_hooks_device(sd1_folder, monkeypatch, how):
    """``enable_model_cpu_offload`` (its accelerator here: the CPU, which diffusers accepts when
    named) or group offloading: nothing is moved by us, the hooks' device is used, and the
    result is the plain pipeline's."""
    pytest.importorskip("accelerate")
    pipe = StableDiffusionPipeline.from_pretrained(sd1_folder)
    _offload(pipe, how)
    with monkeypatch.context() as patch:
        patch.setattr(torch.nn.Module, "to", _refuse)
        patch.setattr(DiffusionPipeline, "to", _refuse)
        backend = load_model(pipe, device="cpu")
        with pytest.raises(ModelSpecError, match="the pipeline is offloaded"):
            load_model(pipe, device="meta")
    assert backend.device == torch.device("cpu") and backend.describe()["offload"] is True
    plain = load_model(StableDiffusionPipeline.from_pretrained(sd1_folder))
    assert "offload" not in plain.describe()
    assert np.array_equal(_inpainted(backend), _inpainted(plain))


def test_sequential_offload_is_not_moved_nor_moved_elsewhere(sd1_folder, monkeypatch):
    """``enable_sequential_cpu_offload`` leaves the weights on the meta device: the backend
    takes the hooks' device and never moves them; another device is refused. (Running it needs
    an accelerator: diffusers' own pipeline fails on the CPU too.)"""
    pytest.importorskip("accelerate")
    pipe = StableDiffusionPipeline.from_pretrained(sd1_folder)
    pipe.enable_sequential_cpu_offload(device="cpu")
    assert pipe.unet.device == torch.device("meta")
    with monkeypatch.context() as patch:
        patch.setattr(torch.nn.Module, "to", _refuse)
        patch.setattr(DiffusionPipeline, "to", _refuse)
        backend = load_model(pipe)
        with pytest.raises(ModelSpecError) as info:
            load_model(pipe, device="meta")
    assert backend.device == torch.device("cpu") and backend.describe()["offload"] is True
    message = str(info.value)
    assert "device 'meta' asked, but the pipeline is offloaded and runs on 'cpu'" in message
    assert pipe.unet.device == torch.device("meta")


def _refuse(self, *args, **kwargs):
    raise AssertionError(f".to() called on a {type(self).__name__}")


def test_a_plain_pipeline_asked_for_another_device_is_moved_by_diffusers(sd1_folder, monkeypatch):
    pipe = StableDiffusionPipeline.from_pretrained(sd1_folder)
    moves = []
    monkeypatch.setattr(DiffusionPipeline, "to", lambda self, *args: moves.append(args) or self)
    load_model(pipe, device="cpu")
    assert moves == []
    load_model(pipe, device="meta")
    assert moves == [(torch.device("meta"),)]


def test_a_task_run_frees_the_offload_hooks_as_a_pipeline_call_does(sd1_folder, monkeypatch):
    """After each task's run the pipeline's ``maybe_free_model_hooks()`` is called, as diffusers
    ends ``__call__``: with ``enable_model_cpu_offload`` the models are moved back to the CPU and
    fresh hooks armed (the next run gives the same result); a pipeline without hooks is not
    moved."""
    pytest.importorskip("accelerate")
    moved, freed = [], []
    to, free = DiffusionPipeline.to, DiffusionPipeline.maybe_free_model_hooks

    def spy_to(self, *args, **kwargs):
        moved.append(str(args[0]) if args else kwargs.get("device"))
        return to(self, *args, **kwargs)

    def spy_free(self):
        freed.append(type(self).__name__)
        return free(self)

    monkeypatch.setattr(DiffusionPipeline, "to", spy_to)
    monkeypatch.setattr(DiffusionPipeline, "maybe_free_model_hooks", spy_free)
    pipe = StableDiffusionPipeline.from_pretrained(sd1_folder)
    pipe.enable_model_cpu_offload(device="cpu")
    backend = load_model(pipe)
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (16, 16, 3), np.uint8))
    settings = dict(seed=2, updates=1, samples=1, runs=1, final_samples=1, matting=False)
    settings |= dict(iters=1, disable=True, work_side=0)
    for run in range(2):
        hooks, moved[:], freed[:] = list(pipe._all_hooks), [], []
        first = _inpainted(backend)
        assert freed == ["StableDiffusionPipeline"] and moved == ["cpu"]
        assert not {id(h) for h in hooks} & {id(h) for h in pipe._all_hooks}  # armed anew
        layers = decompose_image(backend, image, "a cat", "a dog", **settings)
        assert len(freed) == 2 and moved == ["cpu", "cpu"]
        if run == 0:
            results = (first, layers.images)
    assert np.array_equal(first, results[0]) and torch.equal(layers.images, results[1])
    plain = load_model(StableDiffusionPipeline.from_pretrained(sd1_folder))
    moved[:], freed[:] = [], []
    assert np.array_equal(_inpainted(plain), first)
    assert freed == ["StableDiffusionPipeline"] and moved == []  # no hooks: nothing moved
    freed.clear()
    _inpainted(load_model(str(sd1_folder), device="cpu"))
    assert freed == []  # a pipeline loaded here has no hooks of the user's: left alone


def test_a_tiled_run_frees_the_offload_hooks_once(sd1_folder, monkeypatch):
    """A tiled inpainting solves its tiles in several batches but is one pipeline call's worth:
    the offloaded models go back to the CPU once, at its end, not after every batch."""
    pytest.importorskip("accelerate")
    freed, batches = [], []
    free = DiffusionPipeline.maybe_free_model_hooks
    monkeypatch.setattr(
        DiffusionPipeline, "maybe_free_model_hooks", lambda self: freed.append(1) or free(self)
    )
    import importlib

    generate = importlib.import_module("layerdecomp.tasks.generate")  # the module, not the task
    sample = generate.solvers.sample

    def spy_sample(*args, **kwargs):
        batches.append(1)
        return sample(*args, **kwargs)

    monkeypatch.setattr(generate.solvers, "sample", spy_sample)
    pipe = StableDiffusionPipeline.from_pretrained(sd1_folder)
    pipe.enable_model_cpu_offload(device="cpu")
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    mask = Image.new("L", (32, 32), 0)
    mask.paste(255, (8, 8, 24, 24))
    out = inpaint(load_model(pipe), image, mask, prompt="a cat", steps=1, iters=1, seed=3,
                  tile=16, tile_batch=1, disable_progress=True)  # fmt: skip
    assert len(batches) > 1 and freed == [1], (batches, freed)
    assert out.images[0].size == (32, 32)
