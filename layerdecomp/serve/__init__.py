"""``layerdecomp serve``: a web page and an HTTP API for layer decomposition (FastAPI).

- :mod:`.app`: :func:`create_app` (the page, ``/api/decompose`` and the job routes).
- :mod:`.settings`: :class:`Settings`, the server's limits, each declared once (with help and
  bounds: the command's options are generated from them).
- :mod:`.form`: a request's fields, from the one list of the options the form shows.
- :mod:`.jobs`: the queue; one worker thread runs the jobs in order on the shared model.
- :mod:`.runner`: a request checked into an ``Order``, and a job's run (the task
  :func:`layerdecomp.tasks.decompose_image`, written by
  :func:`layerdecomp.layers.save_decomposition`, so the files are those of the command line).
- :mod:`.http_errors`: every error as ``{"error": "<one line>"}``, and the upload limit.
- :mod:`.server`: the listening socket and uvicorn.
- ``static/``: the page (plain HTML, CSS and JavaScript; nothing is fetched from elsewhere).

Needs the ``serve`` extra: ``pip install 'layerdecomp[serve]'``.
"""

from .app import create_app
from .server import address, listen, run_server
from .settings import Settings

__all__ = ["Settings", "address", "create_app", "listen", "run_server"]
