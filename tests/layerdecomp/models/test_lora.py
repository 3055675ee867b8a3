"""LoRA adapters through diffusers' ``load_lora_weights``: ``FILE[:SCALE]`` entries, their scales,
and one-line refusals. The LoRA is made here, on the tiny SD 1.x UNet's attention projections."""

from __future__ import annotations

import pytest
import torch
from diffusers import StableDiffusionPipeline
from safetensors.torch import save_file

from layerdecomp.errors import ModelSpecError
from layerdecomp.models import Lora, load_model
from layerdecomp.models.options import ModelOptions

pytestmark = pytest.mark.usefixtures("one_thread")


def make_lora(folder, base, seed: int = 0):
    """A rank-4 LoRA of ``base``'s UNet attention projections with random (non-zero) ``lora_B``,
    saved as diffusers saves one: ``folder/pytorch_lora_weights.safetensors``."""
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    pipe = StableDiffusionPipeline.from_pretrained(base)
    targets = ["to_q", "to_k", "to_v", "to_out.0"]
    pipe.unet.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=targets))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in pipe.unet.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.5)
    StableDiffusionPipeline.save_lora_weights(
        folder, unet_lora_layers=get_peft_model_state_dict(pipe.unet)
    )
    return folder / "pytorch_lora_weights.safetensors"


@pytest.fixture(scope="session")
def lora_file(tiny_root, sd1_folder):
    path = tiny_root / "lora-a" / "pytorch_lora_weights.safetensors"
    return path if path.exists() else make_lora(tiny_root / "lora-a", sd1_folder)


@pytest.fixture(scope="session")
def other_lora(tiny_root, sd1_folder):
    path = tiny_root / "lora-b" / "pytorch_lora_weights.safetensors"
    return path if path.exists() else make_lora(tiny_root / "lora-b", sd1_folder, seed=1)


def _output(backend) -> torch.Tensor:
    """The network's output for a fixed x_t, t and prompt."""
    x_t = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    return backend.model_fn(backend.encode_prompt("a cat"), 0.0)(x_t, 500)


@pytest.mark.parametrize(
    "entry, path, scale",
    [
        ("a.safetensors", "a.safetensors", 1.0),
        ("a.safetensors:0.8", "a.safetensors", 0.8),
        ("dir/a.safetensors:-1.5e-1", "dir/a.safetensors", -0.15),
        (" a.safetensors:.5 ", "a.safetensors", 0.5),
        ("C:\\loras\\a.safetensors", "C:\\loras\\a.safetensors", 1.0),
        ("C:\\loras\\a.safetensors:2", "C:\\loras\\a.safetensors", 2.0),
        ("C:", "C:", 1.0),
        ("styles:v2", "styles:v2", 1.0),
        ("a.safetensors:inf", "a.safetensors:inf", 1.0),
    ],
)
def test_entries_take_a_scale_only_from_a_trailing_number(entry, path, scale):
    assert Lora.parse(entry) == Lora(path, scale)


def test_an_existing_path_with_a_colon_is_taken_whole(tmp_path):
    folder = tmp_path / "run:2"
    folder.mkdir()
    assert Lora.parse(str(folder)) == Lora(str(folder), 1.0)
    assert Lora.parse(f"{folder}:0.5") == Lora(str(folder), 0.5)
    with pytest.raises(ModelSpecError, match="expected FILE"):
        Lora.parse("  ")
    with pytest.raises(ModelSpecError, match="finite"):
        Lora.parse("a.safetensors:1e999")


def test_a_lora_changes_the_output_and_its_scale_weighs_it(sd1_folder, lora_file):
    plain = _output(load_model(str(sd1_folder), device="cpu"))
    full = load_model(str(sd1_folder), device="cpu", lora=[str(lora_file)])
    zero = load_model(str(sd1_folder), device="cpu", lora=[f"{lora_file}:0"])
    half = load_model(str(sd1_folder), device="cpu", lora=[f"{lora_file.parent}:0.5"])
    assert not torch.allclose(_output(full), plain, atol=1e-3)
    assert torch.equal(_output(zero), plain)
    # the adapters add scale × (their change) to the projections: half lies between
    assert 0 < (_output(half) - plain).abs().max() < (_output(full) - plain).abs().max()
    assert full.describe()["lora"] == [{"path": str(lora_file), "scale": 1.0}]
    assert half.describe()["lora"] == [{"path": str(lora_file.parent), "scale": 0.5}]
    assert full.pipeline.get_active_adapters() == ["lora0"]
    modules = (full.unet, full.vae, full.pipeline.text_encoder)
    assert not any(p.requires_grad for m in modules for p in m.parameters())
    assert not full.unet.training


def test_several_loras_are_active_together(sd1_folder, lora_file, other_lora):
    plain = _output(load_model(str(sd1_folder), device="cpu"))
    one = _output(load_model(str(sd1_folder), device="cpu", lora=[str(lora_file)]))
    both = load_model(str(sd1_folder), device="cpu", lora=[str(lora_file), f"{other_lora}:0"])
    assert sorted(both.pipeline.get_active_adapters()) == ["lora0", "lora1"]
    torch.testing.assert_close(_output(both), one)
    assert not torch.allclose(one, plain, atol=1e-3)


def test_model_options_load_the_lora(sd1_folder, lora_file):
    options = ModelOptions(model=str(sd1_folder), device="cpu", lora=f"{lora_file}:0.8")
    backend = options.load()
    assert backend.describe()["lora"] == [{"path": str(lora_file), "scale": 0.8}]
    assert options.record()["lora"] == [f"{lora_file}:0.8"]


def test_a_pipeline_object_keeps_its_own_adapters(sd1_folder, lora_file):
    plain = _output(load_model(str(sd1_folder), device="cpu"))
    pipe = StableDiffusionPipeline.from_pretrained(sd1_folder)
    pipe.load_lora_weights(str(lora_file.parent), adapter_name="mine")
    backend = load_model(pipe)
    assert backend.describe()["adapters"] == ["mine"]
    expected = _output(load_model(str(sd1_folder), device="cpu", lora=[str(lora_file)]))
    torch.testing.assert_close(_output(backend), expected)
    assert not torch.allclose(_output(backend), plain, atol=1e-3)


def test_refusals_are_one_line(tmp_path, sd1_folder, pixel_folder, lora_file):
    folder = str(sd1_folder)
    (tmp_path / "lora.bin").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "empty").mkdir()
    (tmp_path / "pickled").mkdir()
    (tmp_path / "pickled" / "pytorch_lora_weights.bin").write_bytes(b"x")
    save_file({"transformer.x.lora_A.weight": torch.zeros(4, 4)}, tmp_path / "alien.safetensors")
    kohya = {"lora_unet_nowhere.lora_down.weight": torch.zeros(4, 4)}  # no lora_up: broken
    save_file(kohya, tmp_path / "bad.safetensors")
    cases = [
        (folder, str(tmp_path / "missing.safetensors:0.5"), "no such file or folder"),
        (folder, str(tmp_path / "lora.bin"), "refusing a pickle file"),
        (folder, str(tmp_path / "notes.txt"), "not a LoRA file"),
        (folder, str(tmp_path / "empty"), "the folder holds no .safetensors file"),
        (folder, str(tmp_path / "pickled"), "only pickle weights (pytorch_lora_weights.bin)"),
        (folder, str(tmp_path / "alien.safetensors"), "none of its weights fit a layer"),
        (folder, str(tmp_path / "bad.safetensors"), f"cannot be loaded into model {folder!r} ("),
        (str(pixel_folder), str(lora_file), "(DDPMPipeline) cannot take LoRA adapters"),
    ]
    for model, entry, fragment in cases:
        with pytest.raises(ModelSpecError) as info:
            load_model(model, device="cpu", lora=[entry])
        message = str(info.value)
        assert message.startswith("lora") and fragment in message, message
        assert "\n" not in message
