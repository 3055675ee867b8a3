"""The writers read a decomposition through :class:`LayerStack` only: a stand-in holding just the
protocol's members writes what the :class:`Layers` it copies writes."""

import json
from types import SimpleNamespace

import pytest

from layerdecomp.layers import Layers
from layerdecomp.layers.writers import LayerStack, layer_images, save_decomposition
from tests.layerdecomp.layers.test_writers import composite_layers, pair_layers


def members() -> list[str]:
    return sorted(name for name in vars(LayerStack) if not name.startswith("_"))


def stand_in(layers: Layers) -> SimpleNamespace:
    """An object with the protocol's members, read from ``layers``, and nothing else."""
    return SimpleNamespace(**{name: getattr(layers, name) for name in members()})


def test_layers_has_every_member_of_the_protocol():
    fields = set(Layers.__dataclass_fields__)
    assert members()
    for name in members():
        assert name in fields or isinstance(getattr(Layers, name), property), name


@pytest.mark.parametrize("make", [composite_layers, pair_layers], ids=["two", "three"])
def test_a_stand_in_with_only_the_protocol_writes_the_same_files(tmp_path, make):
    image, layers = make(32)
    view = stand_in(layers)
    assert not isinstance(view, Layers)
    expected, got = layer_images(layers), layer_images(view)
    assert (got.stack, got.masks, list(got)) == (expected.stack, expected.masks, list(expected))
    for stem in expected:
        assert got[stem].mode == expected[stem].mode, stem
        assert got[stem].tobytes() == expected[stem].tobytes(), stem
    a = save_decomposition(tmp_path / "layers", image, layers, {"seed": 1})
    b = save_decomposition(tmp_path / "view", image, view, {"seed": 1})
    assert sorted(p.name for p in a.iterdir()) == sorted(p.name for p in b.iterdir())
    assert json.loads((a / "run.json").read_text()) == json.loads((b / "run.json").read_text())
    for png in a.glob("*.png"):
        assert png.read_bytes() == (b / png.name).read_bytes(), png.name
