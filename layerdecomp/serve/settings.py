"""The server's limits and defaults: :class:`Settings`, each limit declared once.

Every field carries its default, help and bounds (:func:`solvers.options.option`), so the
``serve`` command's options can be generated from :func:`layerdecomp.options.option_fields`
(``--max-upload-mb``, ``--max-work-side``…) and the web form reads the same values.

A field named ``max_<option>`` is this server's upper limit on the request option of that name
(:meth:`Settings.limit`): the options a request may set (:data:`.form.FORM_OPTIONS`) that the
config leaves unbounded above get one here, so that one request cannot hold the queue for hours.
"""

from __future__ import annotations

from dataclasses import dataclass

from solvers.options import check_fields, option

from ..errors import InputError


@dataclass(frozen=True)
class Settings:
    """The server's limits and defaults (see the module's docstring)."""

    max_upload_mb: float = option(20.0, "Larger uploads are refused (413).", gt=0)
    max_pixels: int = option(
        4096 * 4096, "Images with more pixels are refused (422), before they are decoded.", ge=1
    )
    max_work_side: int = option(
        1024, "The largest work size (longer side, px) a request may ask for.", ge=8
    )
    max_updates: int = option(1000, "The most mask updates a request may ask for.", ge=1)
    max_samples: int = option(64, "The most samples per layer a request may ask for.", ge=1)
    max_runs: int = option(16, "The most runs from random masks a request may ask for.", ge=1)
    max_iters: int = option(100, "The most Newton iterations a request may ask for.", ge=0)
    max_guidance: float = option(100.0, "The largest guidance a request may ask for.", ge=0)
    keep: int = option(32, "Finished runs kept for download; the oldest beyond are deleted.", ge=1)
    max_queued: int = option(16, "Runs that may wait at once; more are refused (503).", ge=1)
    default_seed: int | None = option(
        None, "The seed of a request that gives none (default: a new one per request).", ge=0
    )

    def __post_init__(self) -> None:
        try:
            check_fields(self)
        except ValueError as exc:
            raise InputError(str(exc)) from None

    @property
    def max_upload_bytes(self) -> int:
        """:attr:`max_upload_mb` in bytes (MB = 2²⁰ bytes)."""
        return int(self.max_upload_mb * 2**20)

    def limit(self, name: str) -> int | float | None:
        """This server's upper limit on the request option ``name`` (its ``max_<name>``), if
        any."""
        return getattr(self, f"max_{name}", None)


__all__ = ["Settings"]
