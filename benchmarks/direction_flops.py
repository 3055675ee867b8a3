"""FLOPs of one Newton direction against one gradient direction, counted exactly, no GPU needed.

The paper (§3) puts the Newton direction at half the compute of backpropagation: two forward
passes against one forward and one backward, a backward counted as two forwards. That count holds
when the backward also makes the weights' gradients. A gradient direction ``Jᵀe`` needs only the
gradient with respect to x_t: the models are frozen (``requires_grad_(False)``, as
``layerdecomp.models`` loads them) and ``solvers.gradient`` asks autograd for ``∂/∂x_t`` alone,
so every linear layer and convolution skips its weight-gradient product. This counts the FLOPs
(``torch.utils.flop_counter``, on the meta device: shapes only, nothing is computed or allocated)
of the real architectures at their native sizes, batch 1, and prints the compute-bound ceilings
of the time ratio gradient / Newton: with the input gradient alone (what runs) and with the
weights' gradients too (the paper's count).

    python benchmarks/direction_flops.py                   # sd15, sdxl, sd3
    python benchmarks/direction_flops.py --models tiny
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from diffusers import SD3Transformer2DModel, UNet2DConditionModel
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _gpu_models import SD3, SDXL  # noqa: E402
from _gpu_report import print_table  # noqa: E402
from inpaint_speed import CONFIGS  # noqa: E402

META = torch.device("meta")


def flops(fn) -> int:
    """FLOPs of the matrix products, convolutions and attention that ``fn()`` runs."""
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return counter.get_total_flops()


def direction_flops(network: torch.nn.Module, call, x: torch.Tensor) -> dict[str, int]:
    """FLOPs of a forward, of a forward + backward to the input (weights frozen), and of a
    forward + backward with the weights' gradients (``call(network, x)`` → the output)."""

    def backward(weights: bool) -> None:
        network.requires_grad_(weights)
        x_t = x.detach().requires_grad_(True)
        out = call(network, x_t)
        out.backward(torch.ones_like(out))  # the flop counter's module hooks need .backward()

    network.requires_grad_(False)
    with torch.no_grad():
        forward = flops(lambda: call(network, x))
    counts = {"forward": forward, "input": flops(lambda: backward(False))}
    counts["weights"] = flops(lambda: backward(True))
    network.requires_grad_(False)
    return counts


def _unet(config: dict, size: int, context: int, xl: bool):
    with META:
        net = UNet2DConditionModel(**config)
        ctx = torch.randn(1, 77, context)
        added = {"text_embeds": torch.randn(1, 1280), "time_ids": torch.randn(1, 6)} if xl else None
    t = torch.full((), 500, device=META)

    def call(network, x):
        return network(x, t, ctx, added_cond_kwargs=added).sample

    return net, call, (1, 4, size // 8, size // 8)


def _sd3(config: dict, size: int, tokens: int):
    with META:
        net = SD3Transformer2DModel(**config)
        ctx = torch.randn(1, tokens, config["joint_attention_dim"])
        pooled = torch.randn(1, config["pooled_projection_dim"])
    t = torch.ones(1, device=META)

    def call(network, x):
        return network(
            hidden_states=x,
            timestep=t,
            encoder_hidden_states=ctx,
            pooled_projections=pooled,
            return_dict=False,
        )[0]

    return net, call, (1, config["in_channels"], size // 8, size // 8)


MODELS = {
    "tiny": lambda: _unet({"sample_size": 8, **CONFIGS["tiny"]["unet"]}, 64, 32, False),
    "sd15": lambda: _unet({"sample_size": 64, **CONFIGS["sd15"]["unet"]}, 512, 768, False),
    "sdxl": lambda: _unet(SDXL["unet"], SDXL["size"], 2048, True),
    "sd3": lambda: _sd3(SD3["transformer"], SD3["size"], SD3["tokens"]),
}
SIZES = {"tiny": 64, "sd15": 512, "sdxl": SDXL["size"], "sd3": SD3["size"]}


def rows(names: list[str]) -> list[list[str]]:
    out = []
    for name in names:
        net, call, shape = MODELS[name]()
        with META:
            x = torch.randn(shape)
        c = direction_flops(net.eval(), call, x)
        newton = 2 * c["forward"]
        out.append(
            [
                f"{name} {SIZES[name]}²",
                f"{c['forward'] / 1e12:.3f}",
                f"{newton / 1e12:.3f}",
                f"{c['input'] / 1e12:.3f}",
                f"{c['weights'] / 1e12:.3f}",
                f"{c['input'] / newton:.3f}",
                f"{c['weights'] / newton:.3f}",
            ]
        )
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="sd15,sdxl,sd3", help=f"of {', '.join(MODELS)}")
    args = parser.parse_args(argv)
    head = [
        "model",
        "forward TFLOP",
        "Newton (2 forwards)",
        "gradient, input only",
        "gradient, with weight grads",
        "ratio G/N (what runs)",
        "ratio G/N (paper's count)",
    ]
    print(f"# torch {torch.__version__}, batch 1, torch.utils.flop_counter on the meta device")
    print_table(head, rows(args.models.split(",")))


if __name__ == "__main__":
    main()
