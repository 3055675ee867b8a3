"""Contract checks run over every built-in constraint in the registry."""

import re
from pathlib import Path

import pytest
import torch

import layerdecomp.constraints
from layerdecomp.constraints import available


def _mask(generator):
    image = torch.rand(2, 3, 8, 8, generator=generator) * 2 - 1
    known = (torch.rand(2, 1, 8, 8, generator=generator) > 0.3).float()
    return available()["mask"](image=image, known=known), (2, 3, 8, 8)


def _blend(generator):
    image = torch.rand(1, 3, 8, 8, generator=generator) * 2 - 1
    mask = torch.rand(1, 1, 8, 8, generator=generator)
    return available()["blend"](image=image, mask=mask), (2, 3, 8, 8)


def _downsample(generator):
    y = torch.rand(2, 3, 2, 2, generator=generator) * 2 - 1
    return available()["downsample"](y=y, scale=4), (2, 3, 8, 8)


def _clip_style(generator):
    from .tiny_clip import tiny_clip

    reference = torch.rand(1, 3, 12, 12, generator=generator) * 2 - 1
    return available()["clip_style"](reference=reference, clip=tiny_clip()), (2, 3, 8, 8)


# One example per built-in constraint; a new built-in must add its own here.
EXAMPLES = {"blend": _blend, "clip_style": _clip_style, "downsample": _downsample, "mask": _mask}
BUILTINS = sorted(n for n, c in available().items() if c.__module__.startswith("layerdecomp."))


def test_every_builtin_has_an_example():
    assert set(BUILTINS) <= set(EXAMPLES)


def test_every_registered_module_is_imported_by_the_package():
    """A built-in registers when ``layerdecomp/constraints/__init__.py`` imports its module."""
    folder = Path(layerdecomp.constraints.__file__).parent
    declared = {}
    for path in sorted(folder.glob("*.py")):
        for name in re.findall(r"^@register\(\"(\w+)\"\)", path.read_text(), flags=re.M):
            declared[name] = f"layerdecomp.constraints.{path.stem}"
    assert declared, "no @register(...) found: the pattern above is out of date"
    known = available()
    assert {n: getattr(known.get(n), "__module__", None) for n in declared} == declared
    assert sorted(declared) == BUILTINS


@pytest.mark.parametrize("name", BUILTINS)
def test_constraint_contract(name):
    constraint, shape = EXAMPLES[name](torch.Generator().manual_seed(0))
    again, _ = EXAMPLES[name](torch.Generator().manual_seed(0))
    x0 = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    e, residual = constraint(x0)
    assert e.shape == x0.shape and e.dtype == x0.dtype
    assert residual.shape == (shape[0],)
    e2, residual2 = again(x0)
    assert torch.equal(e, e2) and torch.equal(residual, residual2)  # deterministic under a seed
    # moving x̂0 a small step along e lowers the residual (identity-Jacobian model)
    _, after = constraint(x0 + 0.1 * e)
    assert (after < residual).all()
