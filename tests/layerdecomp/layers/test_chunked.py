"""Under a memory budget the network's batches and the decodes run in chunks, and the results are
the unchunked run's.

Not bit for bit on the CPU: MKL picks its matrix-product kernel by the number of rows, and the
UNet's time embedding is a (batch, 32) product, so its float32 rounding differs between a batch
of 24 rows and one of 2 (by 1 ulp, 1e-7; the UNet's output by about 1e-6; each row's arithmetic
is otherwise the same). Through the engine's updates that stays below 1e-3 on images in [−1, 1];
the tolerance below is that bound.
"""

from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionPipeline

from layerdecomp.layers.engine import decompose
from layerdecomp.models import from_pipe, load_model
from layerdecomp.models.memory import GIB, MARGIN
from layerdecomp.tasks.inpaint import inpaint

TOLERANCE = 1e-3


def network_batches(backend) -> list[int]:
    """The batch sizes the UNet sees from now on."""
    seen: list[int] = []
    backend.unet.register_forward_pre_hook(lambda module, args: seen.append(args[0].shape[0]))
    return seen


def budget_for(backend, rows: int) -> float:
    """A budget (GiB) that fits ``rows`` rows of every call the backend measured so far."""
    need = max(cost.peak(rows) for cost in backend.memory.costs.values())
    return (backend._resident_bytes() + need / MARGIN + 64) / GIB


def run_decompose(backend):
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(1, 3, 32, 32, generator=generator) * 2 - 1
    return decompose(
        backend,
        image,
        "a cat",
        "a dog",
        generator=torch.Generator().manual_seed(1),
        disable=True,
        updates=2,
        samples=3,
        runs=2,
        final_samples=2,
        guidance=1.0,
    )


@pytest.fixture
def backend(sd1_folder, one_thread):
    return load_model(str(sd1_folder), device="cpu")


def test_a_decomposition_in_chunks_of_two_equals_the_whole_batch(backend):
    seen = network_batches(backend)
    whole = run_decompose(backend)
    assert max(seen) == 2 * 2 * 2 * 3  # L·R·S rows, doubled by the guidance
    backend.set_memory_budget(100.0)  # measured, but all fits
    assert torch.equal(run_decompose(backend).images, whole.images)
    backend.set_memory_budget(budget_for(backend, 2))
    seen.clear()
    chunked = run_decompose(backend)
    assert max(seen) == 2 * 2  # two rows a call, doubled by the guidance
    decodes = {batch: n for (what, batch), n in backend.memory._rows.items() if what[0] == "decode"}
    assert decodes[12] < 12  # the decodes of the 12 samples in chunks too (a row costs less)
    torch.testing.assert_close(chunked.masks, whole.masks, rtol=0, atol=TOLERANCE)
    torch.testing.assert_close(chunked.images, whole.images, rtol=0, atol=TOLERANCE)
    assert chunked.history == pytest.approx(whole.history, abs=TOLERANCE)


def test_an_inpainting_in_chunks_of_one_equals_the_whole_batch(backend):
    image = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(2))
    from PIL import Image

    pil = Image.fromarray((image.permute(1, 2, 0) * 255).byte().numpy())
    mask = torch.zeros(32, 32)
    mask[8:24, 8:24] = 1

    def run():
        return inpaint(
            backend, pil, mask, seed=3, num_samples=4, steps=3, iters=2, disable_progress=True,
            prompt="a cat", guidance=1.0, paste_back=False,
        )  # fmt: skip

    seen = network_batches(backend)
    whole = run()
    assert max(seen) == 2 * 4
    backend.set_memory_budget(100.0)
    run()
    backend.set_memory_budget(budget_for(backend, 1))
    seen.clear()
    chunked = run()
    assert max(seen) == 2
    for a, b in zip(chunked.images, whole.images, strict=True):
        diff = np.abs(np.asarray(a, dtype=int) - np.asarray(b, dtype=int))
        assert diff.max() <= 1  # 8-bit images: at most one level of rounding


def test_a_budget_below_one_sample_is_one_error_naming_the_smallest(backend):
    from layerdecomp.errors import ModelSpecError

    backend.set_memory_budget(1e-5)
    with pytest.raises(ModelSpecError, match=r"the smallest that fits is [0-9.]+ GiB$") as caught:
        run_decompose(backend)
    backend.set_memory_budget(float(str(caught.value).rsplit(" ", 2)[-2]))
    layers = run_decompose(backend)
    assert torch.isfinite(layers.images).all()


def test_the_gradient_direction_backpropagates_through_checkpointed_chunks(backend):
    from solvers import refine
    from solvers.options import RefineOptions

    torch.manual_seed(4)
    x_t = torch.randn(6, 4, 16, 16)
    target = torch.randn(6, 4, 16, 16)

    def constraint(x0):
        return target - x0, (target - x0).pow(2).mean((1, 2, 3))

    options = RefineOptions(iters=2, direction="gradient")

    def run():
        denoiser = backend.denoiser(["a cat", "a dog"], "", 1.0)
        return refine(denoiser, constraint, x_t, 500, options).x0

    whole = run()
    backend.set_memory_budget(100.0)
    run()
    backend.set_memory_budget(budget_for(backend, 2))
    seen = network_batches(backend)
    chunked = run()
    graph = [n for (what, _), n in backend.memory._rows.items() if what[3]]
    assert graph and max(graph) == 2 and 4 in seen  # with a graph: two rows a call
    torch.testing.assert_close(chunked, whole, rtol=0, atol=TOLERANCE)


def test_chunks_run_through_diffusers_model_offload_hooks(sd1_folder, one_thread):
    """On the CPU the hooks' execution device is the CPU itself. Sequential offload cannot be
    checked here: accelerate fails in the CLIP text encoder on a CPU execution device, before
    any chunk (``set_module_tensor_to_device``); it needs a GPU."""
    offload = "model"
    pipe = StableDiffusionPipeline.from_pretrained(Path(sd1_folder), safety_checker=None)
    whole = run_decompose(from_pipe(pipe))
    if offload == "model":
        pipe.enable_model_cpu_offload(device="cpu")
    else:
        pipe.enable_sequential_cpu_offload(device="cpu")
    backend = from_pipe(pipe)
    backend.set_memory_budget(100.0)
    run_decompose(backend)
    backend.set_memory_budget(budget_for(backend, 2))
    chunked = run_decompose(backend)
    network = [n for (what, _), n in backend.memory._rows.items() if what[0] == "network"]
    assert max(network) == 2
    torch.testing.assert_close(chunked.images, whole.images, rtol=0, atol=TOLERANCE)
