"""The pieces of a training step that keep the host out of it (issue #24).

Every random draw comes from one generator on the training device, the data stays there as uint8,
crops are one gather, the caption choice is an inverse-CDF lookup (no ``multinomial`` check, no
boolean-mask assignment), the optimizer is AdamW's fused (CUDA) or foreach (CPU) implementation,
the EMA is one ``torch._foreach_lerp_`` and the losses stay on the device until the loop reads
them, every ``log_every`` steps. Nothing in a step waits for the device, and every shape is
fixed, so the forward and loss can be ``torch.compile``'d without recompiling.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import torch

from layerdecomp.models.compiled import GRAPH_MODES, compile_function

WARM_UP_CALLS = 3
"""Calls of a compiled step before its loop's clock starts: compilation, then (under CUDA
graphs) the recording on the second and the first replay on the third."""


def device_generator(device: torch.device | str, seed: int) -> torch.Generator:
    """A generator on ``device`` seeded with ``seed`` (its state is saved by checkpoints)."""
    return torch.Generator(device=torch.device(device)).manual_seed(seed)


def tune_device(device: torch.device | str) -> None:
    """On CUDA: cuDNN picks the fastest kernels for the (static) shapes, fp32 matmuls use TF32."""
    if torch.device(device).type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.set_float32_matmul_precision("high")


def to_model_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 ``[0, 255]`` to float ``[-1, 1]``."""
    return images.float() / 127.5 - 1.0


def random_crops(images: torch.Tensor, crop: int, generator: torch.Generator) -> torch.Tensor:
    """A random ``crop``² window of every image ``(B, C, H, W)``, gathered in one indexing op.

    The offsets are drawn on the images' device; an image no larger than ``crop`` is returned
    whole (no draw).
    """
    b, _, h, w = images.shape
    if crop >= h and crop >= w:
        return images
    device = images.device
    offsets = torch.randint(0, 2**62, (b, 2), generator=generator, device=device)
    top = (offsets[:, 0] % (h - crop + 1))[:, None, None]
    left = (offsets[:, 1] % (w - crop + 1))[:, None, None]
    span = torch.arange(crop, device=device)
    rows, cols = top + span[None, :, None], left + span[None, None, :]
    batch = torch.arange(b, device=device)[:, None, None]
    return images.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)


def choose(cdf: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` draws of an index with the cumulative probabilities ``cdf`` (last entry 1)."""
    u = torch.rand(n, generator=generator, device=cdf.device)
    return torch.searchsorted(cdf, u, right=True).clamp_(max=len(cdf) - 1)


def cumulative(weights: tuple[float, ...], device: torch.device) -> torch.Tensor:
    """The normalised cumulative sums of ``weights``, on ``device``."""
    w = torch.tensor(weights, dtype=torch.float64)
    if (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"weights must be non-negative with a positive sum, got {weights}")
    return (w.cumsum(0) / w.sum()).float().to(device)


def training_noise(
    shape: torch.Size | tuple[int, ...],
    offset: float,
    generator: torch.Generator,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Gaussian noise plus, with ``offset`` > 0, a constant per sample and channel ("offset noise").

    On a 16×16 latent the mean of white noise is small (σ = 1/16), so even at the last timestep of
    SD's schedule the noisy latent's mean still shows the image's mean colour, and a model learns
    to read the colour from the noise instead of from the text. The offset (σ = ``offset``) hides
    it; the trained model is sampled with ordinary noise. Drawn on ``device`` (default: the
    generator's).
    """
    device = generator.device if device is None else device
    noise = torch.randn(shape, generator=generator, device=device)
    if offset > 0:
        noise += offset * torch.randn((*shape[:2], 1, 1), generator=generator, device=device)
    return noise


def adamw(
    params: Iterable[torch.nn.Parameter], lr: float, weight_decay: float, device: torch.device
) -> torch.optim.AdamW:
    """AdamW with the fused kernels on CUDA and the foreach implementation elsewhere."""
    if device.type == "cuda":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True)
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, foreach=True)


class EMA:
    """An exponential moving average of parameters, updated with one ``_foreach_lerp_``.

    Update 1 copies the parameters; update ``n + 1`` blends with decay
    ``min(decay, (1 + n) / (10 + n))`` (diffusers' ``EMAModel`` warm-up, which this replaces).

    Args:
        params: The parameters followed.
        decay: The largest decay.
    """

    def __init__(self, params: Iterable[torch.nn.Parameter], decay: float) -> None:
        self.params = list(params)
        self.decay = decay
        self.count = 0
        self.shadow = [p.detach().clone() for p in self.params]

    def decay_at(self, count: int) -> float:
        """The decay of update ``count`` (1-based)."""
        return 0.0 if count <= 1 else min(self.decay, count / (count + 9))

    @torch.no_grad()
    def step(self) -> None:
        """Blend the current parameters in."""
        self.count += 1
        current = [p.detach() for p in self.params]
        if self.count == 1:
            torch._foreach_copy_(self.shadow, current)
        else:
            torch._foreach_lerp_(self.shadow, current, 1.0 - self.decay_at(self.count))

    @torch.no_grad()
    def copy_to(self, params: Iterable[torch.nn.Parameter] | None = None) -> None:
        """Write the averages into ``params`` (default: the followed ones)."""
        torch._foreach_copy_([p.data for p in (params or self.params)], self.shadow)

    def state_dict(self) -> dict[str, Any]:
        """``count`` and the ``shadow`` tensors."""
        return {"count": self.count, "shadow": list(self.shadow)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output."""
        self.count = int(state["count"])
        with torch.no_grad():
            saved = [s.to(p.device) for s, p in zip(state["shadow"], self.shadow, strict=True)]
            torch._foreach_copy_(self.shadow, saved)


def backward_step(
    loss_fn: Callable[..., torch.Tensor],
    mode: str,
    zero_grad: Callable[[], None],
    log: Callable[[str], None],
    compiler: str | Callable = "inductor",
) -> Callable[..., torch.Tensor]:
    """A function that zeroes the gradients, computes ``out = loss_fn(*args)`` (a 1-D tensor:
    the loss, then anything to log), back-propagates ``out[0]`` and returns ``out`` detached.

    ``mode`` is one of :data:`~layerdecomp.models.compiled.COMPILE_MODES`, the same names as the
    task commands' ``--compile``: ``none`` runs eagerly; otherwise ``loss_fn`` is
    ``torch.compile``'d with static shapes (its backward through AOTAutograd). Under
    ``reduce-overhead`` / ``max-autotune`` on a GPU the forward and the backward are each
    replayed as CUDA graphs (torch's cudagraph trees): every call starts a new cudagraph step and
    ``out`` is cloned, since the next replay overwrites the graph's outputs. ``compiler`` is
    ``torch.compile``'s backend (``"aot_eager"``: a cheap structural check; mode options are
    inductor's).

    A failure in the first :data:`WARM_UP_CALLS` calls (compilation, then the graphs' recording:
    an unsupported op, a missing compiler) is logged and the step goes on in the next mode down,
    ``default`` (kernels without graphs) after a graph mode, then eagerly, so a one-shot GPU run
    never dies of it; a later failure is raised.
    """

    def eager(*args: Any) -> torch.Tensor:
        zero_grad()
        out = loss_fn(*args)
        out[0].backward()
        return out.detach()

    if mode == "none":
        return eager
    modes = [mode, "default"] if mode in GRAPH_MODES else [mode]
    tries = []
    for m, then in zip(modes, [*modes[1:], "none"], strict=True):
        try:
            tries.append((m, *compile_function(loss_fn, m, compiler)))
        except Exception as err:  # noqa: BLE001 - an unknown backend or mode: the next one down
            log(f"torch.compile({m}) unavailable ({type(err).__name__}: {err}); {_running(then)}")
    if not tries:
        return eager
    tries.append(("none", eager, False))
    state = {"at": 0, "calls": 0}

    def step(*args: Any) -> torch.Tensor:
        while True:
            name, fast, graphs = tries[state["at"]]
            if name == "none":
                return eager(*args)
            on_gpu = graphs and args[0].is_cuda
            try:
                zero_grad()
                if on_gpu:
                    torch.compiler.cudagraph_mark_step_begin()
                out = fast(*args)
                out[0].backward()
            except Exception as err:  # noqa: BLE001 - a compiler failure: the next mode down
                if state["calls"] >= WARM_UP_CALLS:
                    raise
                state["at"] += 1
                then = _running(tries[state["at"]][0])
                log(f"torch.compile({name}) failed ({type(err).__name__}: {err}); {then}")
                continue
            state["calls"] += 1
            return out.detach().clone() if on_gpu else out.detach()

    return step


def _running(mode: str) -> str:
    return "running eagerly" if mode == "none" else f"running in mode {mode}"


def compile_warm_up(
    step_fn: Callable[..., torch.Tensor],
    args: tuple[torch.Tensor, ...],
    zero_grad: Callable[[], None],
    calls: int,
) -> float:
    """Call ``step_fn(*args)`` ``calls`` times and drop the gradients (no update: the weights do
    not change), synchronised; returns the seconds it took. This is the compilation and, under
    CUDA graphs, the recording (cudagraph trees record on the second call and replay from the
    third), to be taken before a loop's clock starts and reported apart from it."""
    device = args[0].device
    began = time.monotonic()
    for _ in range(calls):
        step_fn(*args)
    zero_grad()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.monotonic() - began
