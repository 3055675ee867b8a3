"""Training of the embedded "mini" model: ``python -m layerdecomp.training --config C --out DIR``.

An SD-format text-to-image model (AutoencoderKL, UNet2DConditionModel, CLIP text encoder and a
word-level tokenizer, DDIM) trained from scratch on :mod:`layerdecomp.data` composites.
"""

from layerdecomp.training.config import TrainConfig, load_config
from layerdecomp.training.train import TrainResult, train

__all__ = ["TrainConfig", "TrainResult", "load_config", "train"]
