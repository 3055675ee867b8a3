"""The family table: pipeline class → sd / sdxl / pixel / sd3 / flux, refusals, dtype,
attention processors."""

from __future__ import annotations

import json
import shutil
import warnings

import pytest
import torch
from diffusers import (
    DDPMPipeline,
    StableDiffusionImg2ImgPipeline,
    StableDiffusionPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)
from diffusers.models.attention_processor import (
    AttnProcessor,
    AttnProcessor2_0,
    SlicedAttnProcessor,
)

from layerdecomp.errors import ModelSpecError
from layerdecomp.models import (
    FluxBackend,
    PixelBackend,
    SD3Backend,
    StableDiffusionBackend,
    families,
    from_pipeline,
    load_model,
)

pytestmark = pytest.mark.usefixtures("one_thread")

COMMIT = "0" * 40


def _sd1(folder):
    return StableDiffusionPipeline.from_pretrained(folder, safety_checker=None)


def test_table_keys_and_kinds():
    kinds = {cls.__name__: family.kind for cls, family in families().items()}
    assert kinds == {
        "StableDiffusionPipeline": "sd",
        "StableDiffusionXLPipeline": "sdxl",
        "DDPMPipeline": "pixel",
        "DDIMPipeline": "pixel",
        "StableDiffusion3Pipeline": "sd3",
        "FluxPipeline": "flux",
    }
    backends = {family.kind: family.backend for family in families().values()}
    assert backends == {
        "sd": StableDiffusionBackend,
        "sdxl": StableDiffusionBackend,
        "pixel": PixelBackend,
        "sd3": SD3Backend,
        "flux": FluxBackend,
    }


def test_subclass_of_a_supported_pipeline_keeps_its_family(sd1_folder):
    class MyPipeline(StableDiffusionPipeline):
        pass

    pipe = _sd1(sd1_folder)
    mine = MyPipeline(**pipe.components, requires_safety_checker=False)
    backend = from_pipeline(mine, device="cpu")
    assert backend.kind == "sd" and isinstance(backend, StableDiffusionBackend)


def test_unsupported_pipeline_class_lists_the_families(sd1_folder):
    pipe = StableDiffusionImg2ImgPipeline(**_sd1(sd1_folder).components)
    with pytest.raises(ModelSpecError) as info:
        from_pipeline(pipe, spec="img2img", device="cpu")
    message = str(info.value)
    assert message.startswith("model 'img2img': StableDiffusionImg2ImgPipeline: unsupported")
    for name in ("StableDiffusionPipeline", "StableDiffusionXLPipeline", "DDPMPipeline", "SDXL"):
        assert name in message
    assert "\n" not in message


@pytest.mark.parametrize(
    "class_name, reason",
    [
        ("StableDiffusionXLImg2ImgPipeline", "SDXL refiner checkpoints are not supported"),
        ("StableDiffusionInpaintPipeline", "inpainting-specific checkpoints are not supported"),
        ("FluxFillPipeline", "Flux Fill checkpoints are not supported"),
        ("StableDiffusion3Img2ImgPipeline", "unsupported pipeline"),
    ],
)
def test_folder_of_an_unsupported_class_is_refused_before_loading(tmp_path, class_name, reason):
    """Only model_index.json is there: the refusal comes from the table, not a missing weight."""
    folder = tmp_path / "model"
    folder.mkdir()
    index = {"_class_name": class_name, "unet": ["diffusers", "UNet2DConditionModel"]}
    (folder / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(ModelSpecError, match=reason) as info:
        load_model(str(folder), device="cpu")
    assert repr(str(folder)) in str(info.value) and "supported:" in str(info.value)


def test_sd_loads_without_its_safety_checker(tmp_path, sd1_folder):
    """A folder that lists a safety checker and feature extractor (as SD 1.5 on the hub does)
    but ships neither: the SD family's load_kwargs keep diffusers from loading them."""
    folder = tmp_path / "sd-with-checker"
    shutil.copytree(sd1_folder, folder)
    index = json.loads((folder / "model_index.json").read_text())
    index["safety_checker"] = ["stable_diffusion", "StableDiffusionSafetyChecker"]
    index["feature_extractor"] = ["transformers", "CLIPImageProcessor"]
    index["requires_safety_checker"] = True
    (folder / "model_index.json").write_text(json.dumps(index))
    backend = load_model(str(folder), device="cpu")
    assert backend.kind == "sd"
    assert backend.pipeline.safety_checker is None and backend.pipeline.feature_extractor is None
    assert backend.pipeline.config.requires_safety_checker is False


def test_inpainting_unet_in_a_text_to_image_pipeline_is_refused(sd1_folder):
    pipe = _sd1(sd1_folder)
    unet = UNet2DConditionModel.from_config({**pipe.unet.config, "in_channels": 9})
    pipe = StableDiffusionPipeline(**{**pipe.components, "unet": unet})
    with pytest.raises(ModelSpecError, match="inpainting-specific checkpoint"):
        from_pipeline(pipe, device="cpu")


def test_sdxl_vae_stays_float32_under_float16(sdxl_folder, sd1_folder):
    """The table's ``upcast_vae``: SDXL's VAE (force_upcast) in float32, SD's follows dtype."""
    xl = StableDiffusionXLPipeline.from_pretrained(sdxl_folder)
    xl = from_pipeline(xl, device="cpu", dtype="float16")
    assert xl.pipeline.vae.config.force_upcast
    assert xl.unet.dtype == torch.float16 and xl.vae.dtype == torch.float32
    sd = from_pipeline(_sd1(sd1_folder), device="cpu", dtype="float16")
    assert sd.unet.dtype == torch.float16 and sd.vae.dtype == torch.float16


def test_load_passes_dtype_with_the_public_keyword(sd1_folder):
    """Weights load in the requested dtype; diffusers' torch_dtype deprecation never fires."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        backend = load_model(str(sd1_folder), device="cpu", dtype="float16")
    assert backend.unet.dtype == torch.float16 and backend.dtype == torch.float16
    assert not [w for w in caught if "torch_dtype" in str(w.message)]


def test_describe_records_the_installed_attention_processors(sd1_folder):
    pipe = _sd1(sd1_folder)
    pipe.unet.set_attn_processor(AttnProcessor())  # classic: swapped for SDPA
    pipe.vae.set_attn_processor(SlicedAttnProcessor(slice_size=1))  # custom: left in place
    backend = from_pipeline(pipe, device="cpu")
    unet = {type(p) for p in backend.unet.attn_processors.values()}
    vae = {type(p) for p in backend.vae.attn_processors.values()}
    assert unet == {AttnProcessor2_0} and vae == {SlicedAttnProcessor}
    assert backend.describe()["attention"] == {
        "unet": "AttnProcessor2_0",
        "vae": "SlicedAttnProcessor",
    }


def test_pixel_unet_attention_is_recorded(pixel_folder):
    """UNet2DModel has no ``attn_processors`` table; its attention layers are still found."""
    pipe = DDPMPipeline.from_pretrained(pixel_folder)
    for module in pipe.unet.modules():
        if hasattr(module, "set_processor"):
            module.set_processor(AttnProcessor())
    backend = from_pipeline(pipe, device="cpu")
    assert backend.describe()["attention"] == {"unet": "AttnProcessor2_0"}


def _cache_repo(cache, repo_id, folder):
    """Lay ``folder`` out as a Hugging Face cache snapshot of ``repo_id`` (revision main)."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    shutil.copytree(folder, repo / "snapshots" / COMMIT)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
    return repo / "snapshots" / COMMIT


@pytest.fixture
def hub_cache(monkeypatch, tmp_path):
    """An empty, offline Hugging Face cache (the constants the hub libraries read)."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    return tmp_path / "hub"


def test_cached_hub_id_loads_offline(hub_cache, pixel_folder):
    """diffusers' own fallback: offline, a hub id is read from the local cache."""
    _cache_repo(hub_cache, "layerdecomp-tests/tiny-pixel", pixel_folder)
    backend = load_model("layerdecomp-tests/tiny-pixel", device="cpu")
    assert backend.kind == "pixel" and type(backend.pipeline) is DDPMPipeline
    assert backend.describe()["source"] == "hub"


def test_cached_hub_refiner_is_refused_by_name(hub_cache, pixel_folder):
    snapshot = _cache_repo(hub_cache, "layerdecomp-tests/refiner", pixel_folder)
    index = json.loads((snapshot / "model_index.json").read_text())
    (snapshot / "model_index.json").write_text(
        json.dumps({**index, "_class_name": "StableDiffusionXLImg2ImgPipeline"})
    )
    with pytest.raises(ModelSpecError, match="'layerdecomp-tests/refiner'.*SDXL refiner"):
        load_model("layerdecomp-tests/refiner", device="cpu")
