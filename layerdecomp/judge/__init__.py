"""The judge: a small classifier of emoji, texture family and colour that scores generated images.

``Judge.load()`` is the shipped judge (``layerdecomp/weights/judge``); ``judge.predict(images)``
names each uint8 ``(N, H, W, 3)`` image's attributes and ``judge.accuracy(images, truth)`` scores
them against the labels the captions asked for. ``python -m layerdecomp.judge --out DIR`` trains
one (see :mod:`layerdecomp.judge.train`).
"""

from __future__ import annotations

from .model import ATTRIBUTES, LABELS, SHIPPED_DIR, Judge, JudgeNet, check_images

__all__ = ["ATTRIBUTES", "LABELS", "SHIPPED_DIR", "Judge", "JudgeNet", "check_images"]
