"""Single-file SD3 and Flux checkpoints: a transformer-only ``.safetensors`` + a config folder."""

from __future__ import annotations

import diffusers
import pytest
import torch
from safetensors.torch import save_file

from layerdecomp.errors import ModelSpecError
from layerdecomp.models import load_model, resolve_spec
from layerdecomp.models.resolve import _single_file_class

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("kind", ["sd3", "flux"])
def test_transformer_checkpoint_with_config_folder(tmp_path, request, kind):
    """The transformer comes from the file (weights changed to tell them apart), the rest from
    the config folder; offline without a config folder it is one clear error."""
    folder = request.getfixturevalue(f"{kind}_folder")
    reference = load_model(str(folder), device="cpu")
    state = {k: (2 * v).contiguous() for k, v in reference.transformer.state_dict().items()}
    path = tmp_path / f"{kind}-finetune.safetensors"
    save_file(state, str(path))
    backend = load_model(str(path), device="cpu", config=str(folder))
    assert backend.kind == kind and backend.describe()["source"] == "single_file"
    loaded = backend.transformer.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items())
    vae, ref_vae = backend.vae.state_dict(), reference.vae.state_dict()
    assert all(torch.equal(vae[k], v) for k, v in ref_vae.items())
    with pytest.raises(ModelSpecError, match="--model-config"):
        load_model(str(path), device="cpu")


@pytest.mark.parametrize(
    "key, cls",
    [
        ("model.diffusion_model.joint_blocks.0.x_block.attn.qkv.weight", "StableDiffusion3"),
        ("double_blocks.0.img_attn.qkv.weight", "Flux"),
        ("model.diffusion_model.double_blocks.0.img_attn.qkv.weight", "Flux"),
    ],
)
def test_original_layouts_are_recognised(tmp_path, key, cls):
    path = tmp_path / "model.safetensors"
    save_file({key: torch.zeros(1)}, str(path))
    found = _single_file_class(resolve_spec(str(path)))
    assert found is getattr(diffusers, f"{cls}Pipeline")
