"""Tests for the mini-model training script: tokenizer, configs, and a 2-step smoke run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from diffusers import DDIMScheduler, StableDiffusionPipeline
from safetensors import safe_open
from transformers import CLIPTokenizer

from layerdecomp.training.__main__ import main
from layerdecomp.training.components import make_components
from layerdecomp.training.config import CONFIG_DIR, load_config
from layerdecomp.training.loops import training_noise
from layerdecomp.training.tokenizer import build_tokenizer, caption_words, save_tokenizer

MICRO = """
seed = 0
[data]
size = 32
num_train = 8
[vae]
block_out_channels = [8, 16]
norm_num_groups = 8
steps = 2
batch_size = 2
crop = 16
[text]
hidden_size = 32
num_hidden_layers = 1
num_attention_heads = 2
intermediate_size = 64
[unet]
block_out_channels = [16, 32]
norm_num_groups = 8
attention_head_dim = 4
addition_embed_type = "text"
offset_noise = 0.3
steps = 2
batch_size = 2
[sample]
prompts = ["a cat face on blue stripes"]
per_prompt = 1
steps = 2
"""


def test_tokenizer_has_one_token_per_caption_word(tmp_path):
    tokenizer = build_tokenizer(max_length=16)
    for word in caption_words():
        assert len(tokenizer(word, add_special_tokens=False).input_ids) == 1, word
    ids = tokenizer("a cat face on blue stripes").input_ids
    assert ids[0] == tokenizer.bos_token_id and ids[-1] == tokenizer.eos_token_id and len(ids) == 8
    assert tokenizer.unk_token_id not in tokenizer("zebra 42!", add_special_tokens=False).input_ids
    save_tokenizer(tokenizer, tmp_path)
    classic = CLIPTokenizer(vocab=str(tmp_path / "vocab.json"), merges=str(tmp_path / "merges.txt"))
    assert classic("a cat face on blue stripes").input_ids == ids
    assert CLIPTokenizer.from_pretrained(tmp_path).model_max_length == 16


@pytest.mark.parametrize("name", ["cpu", "gpu"])
def test_bundled_configs_fit_the_size_budget(name):
    config = load_config(CONFIG_DIR / f"{name}.toml")
    parts = make_components(config)
    params = sum(p.numel() for k in ("vae", "unet", "text_encoder") for p in parts[k].parameters())
    assert 2 * params <= 60 * 2**20  # fp16 bytes
    assert parts["unet"].config.cross_attention_dim == parts["text_encoder"].config.hidden_size
    assert load_config(name) == config


def test_unknown_config_key_is_an_error():
    with pytest.raises(ValueError, match="unknown key"):
        load_config(None, vae={"stepz": 3})


def test_sample_guidance_is_named_guidance_scale_and_the_old_key_is_refused(tmp_path):
    scaled = tmp_path / "scaled.toml"
    scaled.write_text("[sample]\nguidance_scale = 2.5\n")
    assert load_config(scaled).sample.guidance_scale == 2.5
    old = tmp_path / "old.toml"
    old.write_text("[sample]\nguidance = 5.0\n")
    result = CliRunner().invoke(main, ["--config", str(old), "--out", str(tmp_path / "out")])
    assert result.exit_code == 1 and not (tmp_path / "out").exists()
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "'guidance_scale'" in lines[0] and "'guidance'" in lines[0], lines
    with pytest.raises(ValueError, match="is now 'guidance_scale'"):
        load_config(None, sample={"guidance": 5.0})


def test_compile_takes_the_task_commands_modes():
    assert load_config(None).compile == "none"
    assert load_config(None, compile="reduce-overhead").compile == "reduce-overhead"
    with pytest.raises(ValueError, match="compile 'inductor' is not one of none, default"):
        load_config(None, compile="inductor")


def test_two_step_smoke_run_writes_a_loadable_pipeline(tmp_path):
    (tmp_path / "micro.toml").write_text(MICRO)
    out = tmp_path / "mini"
    result = CliRunner().invoke(main, ["--config", str(tmp_path / "micro.toml"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    for name in ("MODEL_CARD.md", "loss.png", "samples.png", "reconstructions.png"):
        assert (out / name).is_file(), name
    assert json.loads((out / "training_config.json").read_text())["unet"]["steps"] == 2
    assert "DDIM 2 steps, guidance_scale 5.0," in (out / "MODEL_CARD.md").read_text()
    with safe_open(out / "unet" / "diffusion_pytorch_model.safetensors", "pt") as f:
        assert f.get_tensor(next(iter(f.keys()))).dtype == torch.float16
    pipe = StableDiffusionPipeline.from_pretrained(out, dtype=torch.float32)
    assert isinstance(pipe.scheduler, DDIMScheduler) and pipe.safety_checker is None
    assert pipe.scheduler.config.beta_schedule == "scaled_linear"
    assert pipe.vae.config.scaling_factor != 0.18215  # measured on the trained latents
    assert pipe.unet.config.addition_embed_type == "text"
    pipe.set_progress_bar_config(disable=True)
    image = pipe(
        "a cat face on blue stripes",
        num_inference_steps=2,
        output_type="np",
        generator=torch.Generator().manual_seed(0),
    ).images
    assert image.shape == (1, 32, 32, 3) and torch.isfinite(torch.from_numpy(image)).all()


def test_cpu_config_reproduces_the_shipped_mini_model():
    import layerdecomp

    recorded = Path(layerdecomp.__file__).parent / "weights" / "mini" / "training_config.json"
    assert load_config(None, **json.loads(recorded.read_text())) == load_config("cpu")


@pytest.mark.parametrize("offset", [0.0, 0.3])
def test_offset_noise_adds_a_constant_per_sample_and_channel(offset):
    noise = training_noise(torch.Size((400, 4, 16, 16)), offset, torch.Generator().manual_seed(0))
    means = noise.mean((2, 3))
    # white noise alone: channel means have σ = 1/16; the offset adds σ = offset
    expected = (1 / 256 + offset**2) ** 0.5
    assert means.std().item() == pytest.approx(expected, rel=0.1)
    assert (noise - noise.mean((2, 3), keepdim=True)).std().item() == pytest.approx(1.0, rel=0.02)
