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


def test_hub_id_offline_not_cached(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
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


def test_single_file_config_errors(sd1_single_file, tmp_path, monkeypatch):
    with pytest.raises(ModelSpecError, match="not a diffusers folder"):
        load_model(str(sd1_single_file), device="cpu", config=tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(ModelSpecError, match="--model-config") as info:
        load_model(str(sd1_single_file), device="cpu")
    assert str(sd1_single_file) in str(info.value)
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x00" * 64)
    with pytest.raises(ModelSpecError, match="broken.safetensors"):
        load_model(str(broken), device="cpu")


def test_device_and_dtype_selection():
    assert select_device("cpu") == torch.device("cpu")
    assert select_device(None).type in ("cuda", "mps", "cpu")
    assert select_dtype(None, torch.device("cpu")) == torch.float32
    assert select_dtype("auto", torch.device("cuda")) == torch.float16
    assert select_dtype("bf16", torch.device("cpu")) == torch.bfloat16
    with pytest.raises(ModelSpecError, match="dtype"):
        select_dtype("float8", torch.device("cpu"))
    if not torch.cuda.is_available():
        with pytest.raises(ModelSpecError, match="CUDA is not available"):
            select_device("cuda")
