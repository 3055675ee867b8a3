"""The job queue: one worker, in order, places in the queue, failures as one line, eviction."""

from __future__ import annotations

import threading

import pytest

from layerdecomp.errors import InputError
from layerdecomp.serve.jobs import DONE, FAILED, JobQueue, QueueFull
from solvers import NonFiniteError


@pytest.fixture
def queue_of(tmp_path):
    """``queue_of(run, **kwargs)``: a JobQueue under ``tmp_path``, closed after the test."""
    made = []

    def make(run, **kwargs):
        made.append(JobQueue(run, tmp_path, **kwargs))
        return made[-1]

    yield make
    for queue in made:
        queue.close(timeout=5)


def test_jobs_run_one_at_a_time_in_order(queue_of):
    gate, order, running, overlap = threading.Event(), [], [], []

    def run(job):
        gate.wait(timeout=10)
        overlap.append(len(running))
        running.append(job.id)
        job.folder.mkdir()
        (job.folder / "out.txt").write_text(job.order)
        job.files = ["out.txt"]
        order.append(job.order)
        running.remove(job.id)

    queue = queue_of(run)
    jobs = [queue.submit(name) for name in ("a", "b", "c")]
    for _ in range(1000):  # the worker has taken the first job and waits at the gate
        if jobs[0].state == "running":
            break
        threading.Event().wait(0.005)
    assert [queue.position(job) for job in jobs] == [None, 1, 2]
    gate.set()
    for job in jobs:
        assert job.done.wait(10)
    assert order == ["a", "b", "c"] and overlap == [0, 0, 0]
    assert all(job.state == DONE and job.order is None for job in jobs)
    assert jobs[0].finished <= jobs[1].started <= jobs[1].finished <= jobs[2].started
    assert (jobs[2].folder / "out.txt").read_text() == "c"
    assert queue.get(jobs[1].id) is jobs[1] and queue.get("unknown") is None


@pytest.mark.parametrize(
    ("error", "status", "message"),
    [
        (InputError("image 'x.png': bad"), 422, "image 'x.png': bad"),
        (NonFiniteError("x̂0", timestep=350), 422, "timestep 350: x̂0 is NaN/Inf"),
        (KeyError("oops"), 500, "internal error: KeyError: 'oops'"),
    ],
)
def test_a_failed_job_has_one_line_and_no_files(queue_of, error, status, message):
    def run(job):
        job.folder.mkdir()
        (job.folder / "partial.png").write_bytes(b"half")
        raise error

    job = queue_of(run).submit("x")
    assert job.done.wait(10)
    assert job.state == FAILED and job.status == status
    assert job.error.startswith(message) and "\n" not in job.error
    assert job.error.endswith("; nothing was written") == isinstance(error, NonFiniteError)
    assert not job.folder.exists()
    assert job.public()["error"] == job.error and "files" not in job.public()


def test_the_worker_survives_a_failed_job(queue_of):
    def run(job):
        if job.order == "bad":
            raise RuntimeError("boom")

    queue = queue_of(run)
    bad, good = queue.submit("bad"), queue.submit("good")
    assert good.done.wait(10) and bad.state == FAILED and good.state == DONE


def test_old_finished_jobs_are_deleted_with_their_folders(queue_of):
    def run(job):
        job.folder.mkdir()

    queue = queue_of(run, keep=2)
    jobs = [queue.submit(i) for i in range(4)]
    for job in jobs:
        assert job.done.wait(10)
    queue.submit("sync").done.wait(10)  # eviction runs after each job: now 3 newer than #1
    assert [queue.get(job.id) for job in jobs[:3]] == [None, None, None]
    assert not jobs[0].folder.exists() and not jobs[2].folder.exists()
    assert queue.get(jobs[3].id) is jobs[3] and jobs[3].folder.is_dir()


def test_a_full_queue_refuses_more(queue_of):
    gate = threading.Event()
    queue = queue_of(lambda job: gate.wait(timeout=10), max_queued=2)
    first = queue.submit(0)
    for _ in range(1000):
        if first.state == "running":
            break
        threading.Event().wait(0.005)
    queue.submit(1), queue.submit(2)
    with pytest.raises(QueueFull, match="2 runs waiting"):
        queue.submit(3)
    gate.set()


def test_close_stops_the_worker_and_deletes_the_folders(tmp_path):
    def run(job):
        job.folder.mkdir()

    queue = JobQueue(run, tmp_path)
    job = queue.submit("x")
    assert job.done.wait(10) and job.folder.is_dir()
    queue.close(timeout=5)
    assert not job.folder.exists() and not queue._thread.is_alive()
