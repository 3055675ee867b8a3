"""Spec resolution, pickle safety, offline errors, single-file checkpoints, device selection."""

from __future__ import annotations

import shutil

import pytest
import torch

from layerdecomp.errors import ModelSpecError
from layerdecomp.models import load_model, resolve_spec, select_device, select_dtype
from layerdecomp.models import resolve as resolve_module

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("suffix", [".ckpt", ".bin", ".pt"])
def test_pickle_checkpoint_refused(tmp_path, suffix):
    path = tmp_path / f"model{suffix}"
    path.write_bytes(b"not really a pickle")
    with pytest.raises(ModelSpecError, match="pickle") as info:
        load_model(str(path), device="cpu")
    assert str(path) in str(info.value) and "--allow-pickle" in str(info.value)
    source = resolve_spec(str(path), allow_pickle=True)  # allowed: resolves, loads later
    assert source.kind == "single_file"


def test_folder_with_only_pickle_weights(tmp_path, pixel_folder):
    from diffusers import DDPMPipeline

    folder = tmp_path / "pickled"
    DDPMPipeline.from_pretrained(pixel_folder).save_pretrained(folder, safe_serialization=False)
    assert list((folder / "unet").glob("*.bin"))
    with pytest.raises(ModelSpecError, match="unet/ holds only pickle weights"):
        load_model(str(folder), device="cpu")
    backend = load_model(str(folder), device="cpu", allow_pickle=True)
    assert backend.kind == "pixel"


def test_missing_path_and_bad_folders(tmp_path):
    for spec in (str(tmp_path / "nope"), "./nope", "weights/model.safetensors"):
        with pytest.raises(ModelSpecError, match="no such file or folder") as info:
            load_model(spec, device="cpu")
        assert repr(spec) in str(info.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelSpecError, match="no model_index.json"):
        load_model(str(tmp_path / "empty"), device="cpu")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ModelSpecError, match="not a checkpoint file"):
        load_model(str(tmp_path / "notes.txt"), device="cpu")
    with pytest.raises(ModelSpecError, match="valid hub id"):
        load_model("not a/valid id!", device="cpu")


@pytest.fixture
def offline_empty_cache(monkeypatch, tmp_path):
    """Offline with an empty cache, as the hub libraries see it.

    ``HF_HUB_OFFLINE`` and ``HF_HOME`` are read once, when huggingface_hub is imported; setting
    the variables now would change nothing the libraries do, so the constants are patched.
    """
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))


def test_offline_follows_the_hub_library(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    assert resolve_module.offline() is False
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert resolve_module.offline() is True


@pytest.mark.usefixtures("offline_empty_cache")
def test_hub_id_offline_not_cached():
    spec = "layerdecomp-tests/no-such-model"
    with pytest.raises(ModelSpecError) as info:
        load_model(spec, device="cpu")
    message = str(info.value)
    assert repr(spec) in message and "offline" in message and "\n" not in message


def test_mini_absent_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(resolve_module, "MINI_DIR", tmp_path / "mini")
    with pytest.raises(ModelSpecError, match="'mini' is not installed"):
        load_model("mini", device="cpu")


def test_mini_present_loads_as_folder(monkeypatch, tmp_path, pixel_folder):
    shutil.copytree(pixel_folder, tmp_path / "mini")
    monkeypatch.setattr(resolve_module, "MINI_DIR", tmp_path / "mini")
    backend = load_model("mini", device="cpu")
    assert backend.spec == "mini" and backend.describe()["source"] == "mini"


def test_single_file_with_local_config(sd1_single_file, sd1_folder):
    single = load_model(str(sd1_single_file), device="cpu", config=sd1_folder)
    folder = load_model(str(sd1_folder), device="cpu")
    assert single.kind == "sd" and single.describe()["source"] == "single_file"
    for name in ("unet", "vae", "text_encoder"):
        a = getattr(single.pipeline, name).state_dict()
        b = getattr(folder.pipeline, name).state_dict()
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.usefixtures("offline_empty_cache")
def test_single_file_config_errors(sd1_single_file, tmp_path):
    with pytest.raises(ModelSpecError, match="not a diffusers folder"):
        load_model(str(sd1_single_file), device="cpu", config=tmp_path)
    with pytest.raises(ModelSpecError, match="offline, .*--model-config") as info:
        load_model(str(sd1_single_file), device="cpu")
    assert str(sd1_single_file) in str(info.value)
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x00" * 64)
    with pytest.raises(ModelSpecError, match="broken.safetensors"):
        load_model(str(broken), device="cpu")


def _no_accelerator(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


def test_device_selection_without_accelerator(monkeypatch):
    """A CPU-only machine: "auto" is the CPU, a GPU request is one clear error."""
    _no_accelerator(monkeypatch)
    assert select_device(None) == torch.device("cpu")
    assert select_device("auto") == torch.device("cpu")
    assert select_device("cpu") == torch.device("cpu")
    with pytest.raises(ModelSpecError, match="^device 'cuda': CUDA is not available"):
        select_device("cuda")
    with pytest.raises(ModelSpecError, match="^device 'cuda:1': CUDA is not available"):
        select_device("cuda:1")
    with pytest.raises(ModelSpecError, match="^device 'mps': MPS is not available"):
        select_device("mps")
    with pytest.raises(ModelSpecError, match="^device 'gpu'"):
        select_device("gpu")


def test_device_selection_prefers_cuda_then_mps(monkeypatch):
    _no_accelerator(monkeypatch)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert select_device("auto") == torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert select_device(None) == torch.device("cuda")
    assert select_device("cuda:1") == torch.device("cuda", 1)


def test_dtype_selection():
    assert select_dtype(None, torch.device("cpu")) == torch.float32
    assert select_dtype("auto", torch.device("cuda")) == torch.float16
    assert select_dtype("auto", torch.device("mps")) == torch.float16
    assert select_dtype("bf16", torch.device("cpu")) == torch.bfloat16
    assert select_dtype("torch.float32", torch.device("cuda")) == torch.float32
    assert select_dtype(torch.float16, torch.device("cpu")) == torch.float16
    with pytest.raises(ModelSpecError, match="dtype"):
        select_dtype("float8", torch.device("cpu"))


@pytest.mark.parametrize("hub_state", ["offline", "unreachable"])
def test_an_unknown_hub_id_without_the_hub_is_refused_within_a_second(
    monkeypatch, tmp_path, hub_state
):
    """HF_HUB_OFFLINE set, or no network: one line naming the cache and the way out, at once
    (no retries, no word of a missing model_index.json)."""
    import time

    from huggingface_hub import constants

    from layerdecomp import hub

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", hub_state == "offline")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(hub, "_connects", lambda host, port: False)
    began = time.perf_counter()
    with pytest.raises(ModelSpecError) as caught:
        load_model("layerdecomp-tests/no-such-model", device="cpu")
    assert time.perf_counter() - began < 1.0
    message = str(caught.value)
    assert "not in the local Hugging Face cache" in message and "model_index.json" not in message
    assert ("offline" if hub_state == "offline" else "cannot be reached") in message
    assert "local diffusers folder or .safetensors file" in message and "\n" not in message
