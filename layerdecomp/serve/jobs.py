"""The server's queue: one worker thread runs the submitted jobs one at a time, in order.

The model is loaded once and shared, so jobs never run side by side: each waits its turn and can
be asked where it stands (its place in the queue, its progress, its files). A job's id is a
random token, the only handle on it: a browser sees the jobs it submitted and no others. Finished
jobs are kept (their output folders with them) until ``keep`` newer ones have finished; then the
oldest is deleted.
"""

from __future__ import annotations

import logging
import queue
import secrets
import shutil
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import LayerdecompError

log = logging.getLogger(__name__)

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"


class QueueFull(LayerdecompError):
    """The queue holds as many waiting jobs as it may; the client should try again later."""


@dataclass
class Job:
    """One submitted decomposition and where it stands.

    Attributes:
        id: a random token (URL-safe); whoever knows it may read the job.
        order: what to run (opaque to the queue; the runner's).
        folder: the job's output folder (created by the runner).
        state: ``queued``, ``running``, ``done`` or ``failed``.
        progress: what the runner last reported (JSON-ready).
        files: the files of ``folder`` once done, in the order they were written.
        formats: output format name → its files, once done.
        error: the one-line message of a failed job; ``status`` its HTTP status (4xx: the input
            was at fault, 500: the server).
        summary: what the runner returned (seed, nfe, timings: JSON-ready).
    """

    id: str
    order: Any
    folder: Path
    state: str = QUEUED
    progress: dict[str, Any] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    formats: dict[str, list[str]] = field(default_factory=dict)
    error: str | None = None
    status: int = 200
    summary: dict[str, Any] = field(default_factory=dict)
    submitted: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    done: threading.Event = field(default_factory=threading.Event, repr=False)

    def public(self, position: int | None = None) -> dict[str, Any]:
        """The job as the API shows it (JSON-ready)."""
        out: dict[str, Any] = {"id": self.id, "state": self.state, "progress": self.progress}
        if position is not None:
            out["position"] = position
        out["submitted"], out["started"], out["finished"] = (
            self.submitted,
            self.started,
            self.finished,
        )
        if self.state == DONE:
            out.update(files=self.files, formats=self.formats, summary=self.summary)
        if self.state == FAILED:
            out["error"] = self.error
        return out


Runner = Callable[[Job], None]
"""``run(job)``: does the job's work, writes ``job.folder``, sets ``job.files`` / ``formats`` /
``summary``; may update ``job.progress`` as it goes; raises to fail the job."""


class JobQueue:
    """A FIFO of jobs run one at a time by a worker thread (started here, stopped by
    :meth:`close`).

    Args:
        run: the :data:`Runner` of each job.
        root: the folder under which each job gets ``root/<id>/``.
        keep: finished jobs kept; the oldest beyond that are deleted with their folders.
        max_queued: jobs that may wait at once; :meth:`submit` refuses more.
    """

    def __init__(self, run: Runner, root: Path, *, keep: int = 32, max_queued: int = 16):
        if keep < 1 or max_queued < 1:
            raise ValueError("keep and max_queued must be ≥ 1")
        self._run, self.root = run, Path(root)
        self.keep, self.max_queued = keep, max_queued
        self._lock = threading.Lock()
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._waiting: list[str] = []
        self._inbox: queue.Queue[Job | None] = queue.Queue()
        self._thread = threading.Thread(target=self._work, name="layerdecomp-jobs", daemon=True)
        self._thread.start()

    def submit(self, order: Any) -> Job:
        """Queue ``order`` as a new job.

        Raises:
            QueueFull: ``max_queued`` jobs are already waiting.
        """
        with self._lock:
            if len(self._waiting) >= self.max_queued:
                raise QueueFull(
                    f"the queue is full ({self.max_queued} runs waiting); try again later"
                )
            job_id = secrets.token_urlsafe(16)
            job = Job(job_id, order, self.root / job_id)
            self._jobs[job_id] = job
            self._waiting.append(job_id)
        self._inbox.put(job)
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def position(self, job: Job) -> int | None:
        """How many jobs run or wait before ``job`` (0: it is next); ``None`` once it started."""
        with self._lock:
            if job.id not in self._waiting:
                return None
            busy = any(j.state == RUNNING for j in self._jobs.values())
            return self._waiting.index(job.id) + int(busy)

    def close(self, timeout: float | None = None) -> None:
        """Stop the worker after the job it is running; delete every job's folder."""
        self._inbox.put(None)
        self._thread.join(timeout)
        with self._lock:
            for job in self._jobs.values():
                shutil.rmtree(job.folder, ignore_errors=True)
                job.done.set()

    def _work(self) -> None:
        while (job := self._inbox.get()) is not None:
            with self._lock:
                self._waiting.remove(job.id)
                job.state, job.started = RUNNING, time.time()
            try:
                self._run(job)
            except LayerdecompError as exc:
                self._fail(job, str(exc), 422)
            except FloatingPointError as exc:  # solvers.NonFiniteError: NaN/Inf in a run
                self._fail(job, f"{exc}; nothing was written", 422)
            except Exception as exc:  # the server's fault: logged in full, one line to the client
                log.exception("job %s failed", job.id)
                self._fail(job, f"internal error: {type(exc).__name__}: {exc}", 500)
            else:
                job.state = DONE
            job.finished = time.time()
            job.order = None  # the uploaded image is no longer needed
            job.done.set()
            self._evict()

    def _fail(self, job: Job, message: str, status: int) -> None:
        shutil.rmtree(job.folder, ignore_errors=True)
        job.files, job.formats = [], {}
        job.error, job.status, job.state = " ".join(message.split()), status, FAILED

    def _evict(self) -> None:
        with self._lock:
            finished = [j for j in self._jobs.values() if j.state in (DONE, FAILED)]
            for job in finished[: max(0, len(finished) - self.keep)]:
                del self._jobs[job.id]
                shutil.rmtree(job.folder, ignore_errors=True)


__all__ = ["DONE", "FAILED", "QUEUED", "RUNNING", "Job", "JobQueue", "QueueFull"]
