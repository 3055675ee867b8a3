"""The bundled recipes: TOML presets that ship inside the package as ``layerdecomp._recipes``.

``layerdecomp run NAME`` finds ``NAME.toml`` here (see :mod:`layerdecomp.recipes`).
"""
