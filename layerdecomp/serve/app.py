"""The web app: the page, and the HTTP API beside it (FastAPI).

Routes:

- ``GET /``: the page (``static/index.html``), which uses the API below.
- ``GET /api/info``: the model, the defaults, the limits and the output formats (from
  :data:`layerdecomp.layers.WRITERS`, so a new format shows up on the page by itself).
- ``POST /api/jobs`` (multipart, the fields below): queue a run; ``202`` with its id.
- ``GET /api/jobs/{id}``: its state, place in the queue, progress, and once done its files.
- ``GET /api/jobs/{id}/files/{name}``, ``GET /api/jobs/{id}/zip``: its outputs.
- ``POST /api/decompose`` (multipart): queue a run, wait for it, answer ``application/zip``
  holding the files ``layerdecomp decompose`` writes to its output folder.

Multipart fields: ``image`` (file), ``fg`` (repeatable: one per foreground layer), ``bg``,
``seed``, ``formats`` (repeatable; default all) and the options of :data:`.form.FORM_OPTIONS`,
named, bounded and described as on the command line (generated from
:class:`~layerdecomp.layers.DecomposeConfig`'s fields). Any other field (or a query parameter)
is refused, naming it. Errors are JSON (:mod:`.http_errors`).

(No ``from __future__ import annotations`` here: FastAPI reads the routes' annotations, and
those name ``read_order``, a local of :func:`create_app`.)
"""

import io
import secrets
import shutil
import tempfile
import zipfile
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request, UploadFile
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from ..errors import InputError
from ..io import check_image_size
from ..layers import MAX_LAYERS, WRITERS
from . import http_errors
from .form import form_options, form_signature, refuse_unknown_fields
from .jobs import DONE, FAILED, Job, JobQueue
from .runner import Order, make_order, read_upload, run_order, safe_filename
from .settings import Settings

STATIC = Path(__file__).parent / "static"


def create_app(
    backend,
    *,
    settings: Settings | None = None,
    root: str | Path | None = None,
    metadata: dict[str, Any] | None = None,
) -> FastAPI:
    """The app around a loaded model: the model is shared, runs queue one at a time.

    Args:
        backend: a loaded model (:func:`layerdecomp.models.load_model`).
        settings: limits and defaults (:class:`Settings`).
        root: the folder for the runs' outputs (default: a new temporary folder, made when
            the app starts and deleted when it shuts down).
        metadata: more parameters recorded in each ``run.json`` (the model options, say).
    """
    from ..models.base import native_size

    settings = settings or Settings()
    owned = root is None
    # made when the app starts (and removed when it stops): an app that is never started, or a
    # server stopped before it started, leaves no empty folder behind
    name = f"layerdecomp-serve-{secrets.token_urlsafe(12)}"
    root = Path(tempfile.gettempdir()) / name if owned else Path(root)
    describe = backend.describe()
    native = native_size(backend, default=None)
    jobs = JobQueue(
        lambda job: run_order(backend, job, describe=describe, extra=metadata),
        root,
        keep=settings.keep,
        max_queued=settings.max_queued,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if owned:
            root.mkdir(mode=0o700)
        yield
        jobs.close(timeout=5)
        if owned:
            shutil.rmtree(root, ignore_errors=True)

    app = FastAPI(
        title="layerdecomp",
        summary="Split an image into foreground, background and mask layers.",
        lifespan=lifespan,
    )
    app.state.jobs, app.state.settings = jobs, settings
    http_errors.install(app, settings.max_upload_bytes)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    def read_order(
        image: UploadFile,
        fg: list[str],
        bg: str,
        seed: int | None = None,
        formats: list[str] | None = None,
        **options: Any,
    ):
        """The request's fields, checked, with the image decoded: an ``Order``."""
        work_side = options.get("work_side")
        picture = read_upload(image.file.read(), image.filename, root, settings.max_pixels)
        check_image_size(
            picture.size,
            backend.factor,
            "decompose",
            what=f"image {safe_filename(image.filename)!r}",
        )
        if work_side == 0 and max(picture.size) > settings.max_work_side:
            raise InputError(
                f"work_side: 0 works at the image's own size, {max(picture.size)} px, over this "
                f"server's limit of {settings.max_work_side}; give a smaller work_side"
            )
        if seed is None:
            seed = settings.default_seed
        seed = secrets.randbits(32) if seed is None else seed
        return make_order(picture, image.filename, fg, bg, seed, options, formats)

    read_order.__signature__ = form_signature(settings)  # type: ignore[attr-defined]

    async def known_fields(request: Request) -> None:
        """Refuse a field the request does not have (FastAPI would drop it unread)."""
        query = next(iter(request.query_params), None)
        if query is not None:
            raise InputError(f"{query}: send the request's fields in its multipart body")
        refuse_unknown_fields((await request.form()).keys())

    checked = [Depends(known_fields)]  # run before the fields are read

    def find(job_id: str) -> Job:
        job = jobs.get(job_id)
        if job is None:
            raise HTTPException(404, f"no run {job_id!r} (unknown, or deleted to make room)")
        return job

    def finished(job: Job) -> Job:
        if job.state == FAILED:
            raise HTTPException(409, f"run {job.id!r} failed: {job.error}")
        if job.state != DONE:
            raise HTTPException(409, f"run {job.id!r} is {job.state}; its files are not ready")
        return job

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/api/info")
    def info() -> dict[str, Any]:
        """The model, the form's options (defaults, bounds, help), the limits and the output
        formats."""
        native_side = max(native) if native else None
        options = form_options(settings, native_side)
        defaults = {spec["name"]: spec["default"] for spec in options}
        return {
            "model": describe,
            "native_side": native_side,
            "options": options,
            "defaults": {**defaults, "seed": settings.default_seed},
            "limits": {
                "max_upload_bytes": settings.max_upload_bytes,
                "max_pixels": settings.max_pixels,
                "max_work_side": settings.max_work_side,
                "max_foregrounds": MAX_LAYERS - 1,  # the background is one more
            },
            "formats": {
                name: {"files": list(writer.files), "description": writer.description}
                for name, writer in WRITERS.items()
            },
        }

    @app.post("/api/jobs", status_code=202, dependencies=checked)
    def submit(order: Annotated[Order, Depends(read_order)]) -> dict[str, Any]:
        """Queue a run; poll ``GET /api/jobs/{id}`` for its progress and files."""
        job = jobs.submit(order)
        return job.public(jobs.position(job))

    @app.get("/api/jobs/{job_id}")
    def status(job_id: str) -> dict[str, Any]:
        """The run's state, place in the queue (while queued), progress and files (once done)."""
        job = find(job_id)
        return job.public(jobs.position(job))

    @app.get("/api/jobs/{job_id}/files/{name}")
    def output_file(job_id: str, name: str) -> FileResponse:
        """One output file of a finished run."""
        job = finished(find(job_id))
        if name not in job.files:
            raise HTTPException(404, f"run {job_id!r} has no file {name!r}")
        return FileResponse(job.folder / name)

    @app.get("/api/jobs/{job_id}/zip")
    def archive(job_id: str) -> Response:
        """Every output file of a finished run, zipped."""
        return zip_response(finished(find(job_id)))

    @app.post(
        "/api/decompose",
        dependencies=checked,
        response_class=Response,
        responses={200: {"content": {"application/zip": {}}, "description": "The run's files."}},
    )
    def decompose(order: Annotated[Order, Depends(read_order)]) -> Response:
        """Run a decomposition (queued behind the others) and answer its files as a zip."""
        job = jobs.submit(order)
        job.done.wait()
        if job.state != DONE:
            return http_errors.error_response(job.status, job.error or "the run failed")
        return zip_response(job)

    return app


def zip_bytes(job: Job) -> bytes:
    """The run's files (the names ``layerdecomp decompose`` gives them) in one zip archive."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in job.files:
            archive.write(job.folder / name, name)
    return buffer.getvalue()


def zip_response(job: Job) -> Response:
    stem = Path(job.summary.get("image", "") or "layers").stem or "layers"
    return Response(
        zip_bytes(job),
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{stem}-layers.zip"'},
    )


__all__ = ["STATIC", "create_app", "zip_bytes"]
