"""``work_side``: one declaration and one meaning for every task that resizes (inpaint and
decompose used to differ: inpaint never enlarged an image below the native size)."""

from __future__ import annotations

from layerdecomp.layers import DecomposeConfig
from layerdecomp.options import option_fields
from layerdecomp.tasks import InpaintConfig
from layerdecomp.worksize import resolve_side


def test_inpaint_and_decompose_declare_work_side_alike():
    inpaint, decompose = option_fields(InpaintConfig), option_fields(DecomposeConfig)
    assert inpaint["work_side"].help == decompose["work_side"].help
    assert inpaint["work_side"].default is None and decompose["work_side"].default is None
    assert inpaint["work_side"].meta == decompose["work_side"].meta


def test_the_default_is_the_native_side_for_small_and_large_images():
    assert resolve_side(None, (64, 64)) == 64
    assert resolve_side(None, (512, 768)) == 768
    assert resolve_side(None, (64, 64), tiled=True) == 0  # tiles are native-size already
    assert resolve_side(None, None) == 0  # unknown native size: the image's own
    assert resolve_side(0, (64, 64)) == 0 and resolve_side(96, (64, 64)) == 96
