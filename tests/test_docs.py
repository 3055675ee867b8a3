"""Every ``python`` and ``sh`` block of README.md and docs/**/*.md runs, on small inputs.

Which blocks:

- every fenced block of README.md and docs/**/*.md has a language, one of ``LANGUAGES``: a
  command never hides in an untagged block, and output is shown as ``text``;
- a ``python`` or ``sh`` block runs unless its first line is ``# not run: <reason>``, and the
  reason must say something;
- the README's two quickstart commands are special, since a test cannot make a virtualenv and
  pip-install into it, and the second command is this suite: the first one's ``layerdecomp …``
  part (after its last ``&&``) runs, and the second is run by CI (``.ci/run`` greps it from the
  README and runs it verbatim), which ``test_ci_runs_the_second_quickstart_command`` checks.

How a block runs:

- alone, in a fresh temporary directory holding ``examples/`` (a symlink to the repository's) and
  the inputs the docs' commands name (``inputs``): ``photo.png`` (examples/fox_stripes.png),
  ``mask.png`` (128 px, a white 48 × 48 square in the middle: the region to fill), ``small.png``
  (examples/apple_checks.png at 16 px), ``photos/`` (two examples), ``scans/`` (two 64 px
  examples) and ``masks/`` (a mask per scan, named as it);
- ``python`` blocks with this interpreter (the venv's python); ``sh`` blocks with
  ``bash -e -o pipefail``, ``.venv/bin/`` dropped from their commands, and ``PATH`` starting with
  this interpreter's folder (``python``, ``pip``) behind a folder whose ``layerdecomp`` wraps the
  venv's console script;
- on small settings, which replace the block's own (``FAST``): the wrapper appends them to each
  ``layerdecomp`` command, as flags or as ``KEY=VALUE`` for ``run`` (not with ``--dry-run``), and a
  python block that names ``layerdecomp`` gets ``decompose_image`` and ``inpaint`` of
  ``layerdecomp.tasks`` wrapped to pass them (``PYTHON_FAST``);
- it must exit 0, and what it promises must exist afterwards: each ``-o``/``--output``/``output=``
  of a ``layerdecomp`` command (an image with its ``.json``; a folder with its ``run.json`` or
  ``manifest.jsonl``), and each path a python block passes as a string to ``.save(…)``.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("**/*.md"))]
LANGUAGES = {"python", "sh", "text", "toml", "json"}
RUNNABLE = {"python", "sh"}
NOT_RUN = re.compile(r"#\s*not run\b:?(.*)")
FENCE = re.compile(r"^```(\S*)[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)

DECOMPOSE_FAST = {"updates": "1", "samples": "1", "runs": "1", "final_samples": "1"}
SAMPLING_FAST = {"steps": "2", "iters": "1"}
FAST = {
    "decompose": [*(f"--{k.replace('_', '-')}={v}" for k, v in DECOMPOSE_FAST.items())]
    + ["--no-matting", "-q"],
    **{
        task: [f"--{k}={v}" for k, v in SAMPLING_FAST.items()] + ["-q"]
        for task in ("inpaint", "superres", "style", "constrain")
    },
    "analyze": ["--t=500", "--krylov=4", "--probes=2"],
}
"""The small settings appended to each ``layerdecomp COMMAND`` of an sh block."""
PYTHON_FAST = {
    "decompose_image": {**{k: int(v) for k, v in DECOMPOSE_FAST.items()}, "matting": False},
    "inpaint": {k: int(v) for k, v in SAMPLING_FAST.items()},
}
"""The keywords the wrapped task functions of a python block are called with."""

WRAPPER = """\
import os, sys
from pathlib import Path

FAST, DECOMPOSE_FAST, SAMPLING_FAST = {fast!r}, {decompose!r}, {sampling!r}
args = sys.argv[1:]
command = args[0] if args else ""
if command == "run" and len(args) > 1 and "--dry-run" not in args:
    recipe = Path(args[1])
    task = recipe.read_text() if recipe.suffix == ".toml" and recipe.is_file() else args[1]
    fast = DECOMPOSE_FAST if "decompose" in task else SAMPLING_FAST
    args += [f"{{k}}={{v}}" for k, v in fast.items()]
elif "--help" not in args and "-h" not in args:
    args += FAST.get(command, [])
outputs = [b for a, b in zip(args, args[1:]) if a in ("-o", "--output")]
outputs += [a.split("=", 1)[1] for a in args if a.startswith("output=")]
if "--dry-run" not in args:
    with open(os.environ["DOCS_OUTPUTS"], "a") as log:
        log.writelines(os.path.abspath(o) + "\\n" for o in outputs)
script = Path(sys.executable).with_name("layerdecomp")
if script.is_file():
    os.execv(str(script), [str(script), *args])
os.execv(sys.executable, [sys.executable, "-m", "layerdecomp", *args])
"""

PRELUDE = """\
import functools, runpy, sys

if {patch}:
    import layerdecomp.tasks as tasks

    def fast(function, settings):
        @functools.wraps(function)
        def call(*args, **kwargs):
            return function(*args, **{{**kwargs, **settings}})

        return call

    for name, settings in {fast!r}.items():
        setattr(tasks, name, fast(getattr(tasks, name), settings))
runpy.run_path(sys.argv[1], run_name="__main__")
"""


def blocks(page: Path) -> list[tuple[str, int, str]]:
    """The fenced blocks of ``page``: (language, line of the opening fence, text)."""
    text = page.read_text(encoding="utf-8")
    return [
        (m.group(1), text.count("\n", 0, m.start()) + 1, m.group(2)) for m in FENCE.finditer(text)
    ]


def name(page: Path, line: int) -> str:
    return f"{page.relative_to(ROOT)}:{line}"


def not_run_reason(code: str) -> str | None:
    """The reason of a ``# not run: <reason>`` first line ('' if none given), else ``None``."""
    first = code.lstrip("\n").split("\n", 1)[0].strip()
    match = NOT_RUN.fullmatch(first)
    return None if match is None else match.group(1).strip()


README_SH = [code for lang, _, code in blocks(ROOT / "README.md") if lang == "sh"]
QUICKSTART = README_SH[:2]
ALL = [(page, lang, line, code) for page in PAGES for lang, line, code in blocks(page)]
TO_RUN = [
    pytest.param(lang, code, id=name(page, line))
    for page, lang, line, code in ALL
    if lang in RUNNABLE and not_run_reason(code) is None and code not in QUICKSTART
]


def make_inputs(folder: Path) -> None:
    """The inputs the docs' commands name (see the module docstring)."""
    from PIL import Image

    examples = ROOT / "examples"
    (folder / "examples").symlink_to(examples, target_is_directory=True)
    fox = Image.open(examples / "fox_stripes.png").convert("RGB")
    fox.save(folder / "photo.png")
    mask = Image.new("L", fox.size)
    mask.paste(255, (40, 40, 88, 88))
    mask.save(folder / "mask.png")
    apple = Image.open(examples / "apple_checks.png").convert("RGB")
    apple.resize((16, 16), Image.Resampling.LANCZOS).save(folder / "small.png")
    for sub in ("photos", "scans", "masks"):
        (folder / sub).mkdir()
    for stem in ("fox_stripes", "rabbit_dots"):
        image = Image.open(examples / f"{stem}.png").convert("RGB")
        image.save(folder / "photos" / f"{stem}.png")
        image.resize((64, 64), Image.Resampling.LANCZOS).save(folder / "scans" / f"{stem}.png")
        mask.resize((64, 64)).save(folder / "masks" / f"{stem}.png")


@pytest.fixture(scope="module")
def tools(tmp_path_factory) -> Path:
    """A folder whose ``layerdecomp`` appends ``FAST`` and logs the outputs (``WRAPPER``)."""
    folder = tmp_path_factory.mktemp("bin")
    wrapper = folder / "wrapper.py"
    wrapper.write_text(WRAPPER.format(fast=FAST, decompose=DECOMPOSE_FAST, sampling=SAMPLING_FAST))
    script = folder / "layerdecomp"
    script.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} {wrapper} "$@"\n')
    script.chmod(0o755)
    return folder


def promised(code: str, lang: str, log: Path) -> list[Path]:
    """The outputs a block promises (see the module docstring), as the paths it wrote them to."""
    if lang == "sh":
        return [Path(p) for p in log.read_text().splitlines()] if log.exists() else []
    saved = re.findall(r"""\.save\(\s*(["'])(.+?)\1""", code)
    return [log.parent / path for _, path in saved]


def missing(path: Path) -> str | None:
    """Why ``path`` is not a complete output, or ``None``."""
    if path.is_dir():
        if not any((path / marker).is_file() for marker in ("run.json", "manifest.jsonl")):
            return f"{path}: a folder without run.json or manifest.jsonl"
        return None
    if not path.is_file() or path.stat().st_size == 0:
        return f"{path}: not written"
    return None


def run_block(lang: str, code: str, folder: Path, tools: Path, timeout: float = 600) -> list[Path]:
    """Run one block in ``folder`` (see the module docstring) and return the outputs it promised;
    AssertionError if it fails."""
    make_inputs(folder)
    log = folder / ".outputs"
    env = {
        **os.environ,
        "PATH": os.pathsep.join([str(tools), str(Path(sys.executable).parent), os.environ["PATH"]]),
        "DOCS_OUTPUTS": str(log),
        "HF_HUB_OFFLINE": "1",
    }
    if lang == "sh":
        script = re.sub(r"(?<![\w/.])\.venv/bin/", "", code)
        command = ["bash", "-e", "-o", "pipefail", "-c", script]
    else:
        block = folder / ".block.py"
        block.write_text(code)
        prelude = PRELUDE.format(patch="layerdecomp" in code, fast=PYTHON_FAST)
        command = [sys.executable, "-c", prelude, str(block)]
    done = subprocess.run(
        command, cwd=folder, env=env, capture_output=True, text=True, timeout=timeout
    )
    output = f"{done.stdout}\n{done.stderr}"[-4000:]
    status = done.returncode
    assert status == 0, f"exit {status}:\n{output}"
    outputs = promised(code, lang, log)
    problems = [m for m in map(missing, outputs) if m]
    if lang == "sh":  # a command's image comes with its OUT.json
        images = [p for p in outputs if p.suffix == ".png" and p.is_file()]
        problems += [
            f"{p}: no .json beside it" for p in images if not p.with_suffix(".json").is_file()
        ]
    assert not problems, f"{problems}\n{output}"
    return outputs


@pytest.mark.parametrize(("lang", "code"), TO_RUN)
def test_the_block_runs(lang, code, tmp_path, tools):
    run_block(lang, code, tmp_path, tools)


def test_the_first_quickstart_command_runs_its_layerdecomp_part(tmp_path, tools):
    """The virtualenv and the install are this test run's own; the command after them runs."""
    first = QUICKSTART[0].strip()
    assert first.startswith("python3 -m venv .venv && ")
    command = first.rsplit("&&", 1)[1].strip()
    assert command.startswith(".venv/bin/layerdecomp decompose ")
    outputs = run_block("sh", command, tmp_path, tools)
    assert [p.resolve() for p in outputs] == [(tmp_path / "out" / "fox").resolve()]
    assert (tmp_path / "out" / "fox" / "sheet.png").is_file()


def test_ci_runs_the_second_quickstart_command():
    """The second is the test suite: ``.ci/run`` takes it from the README by this pattern."""
    ci = (ROOT / ".ci" / "run").read_text()
    pattern = "^python3 -m venv .*pytest"
    assert f"grep -m1 -E '{pattern}' README.md" in ci
    lines = [line for line in README_SH[1].splitlines() if re.match(pattern, line)]
    assert lines == [QUICKSTART[1].strip()]
    first_match = next(
        line for line in (ROOT / "README.md").read_text().splitlines() if re.match(pattern, line)
    )
    assert first_match == QUICKSTART[1].strip()


def test_every_block_names_a_known_language():
    unknown = [name(p, line) + f" ({lang!r})" for p, lang, line, _ in ALL if lang not in LANGUAGES]
    assert not unknown, unknown


def test_every_block_that_does_not_run_says_why():
    reasons = {
        name(p, line): not_run_reason(code)
        for p, lang, line, code in ALL
        if lang in RUNNABLE and not_run_reason(code) is not None
    }
    assert reasons, "no block is marked # not run"
    empty = [where for where, reason in reasons.items() if not reason or len(reason) < 10]
    assert not empty, f"'# not run:' without a reason: {empty}"


def test_the_blocks_are_found():
    readme = [p for p in TO_RUN if p.id.startswith("README.md:")]
    langs = {p.values[0] for p in readme}
    assert len(readme) >= 2 and langs == RUNNABLE, [p.id for p in readme]
    assert any(p.id.startswith("docs/") for p in TO_RUN)


def test_a_marker_needs_its_reason():
    assert not_run_reason("# not run: needs a GPU\nnvidia-smi\n") == "needs a GPU"
    assert not_run_reason("# not run\nnvidia-smi\n") == ""
    assert not_run_reason("# not run:   \nnvidia-smi\n") == ""
    assert not_run_reason("layerdecomp constraints\n") is None


@pytest.mark.parametrize(
    ("lang", "code"),
    [
        ("sh", "true\nfalse\n"),
        ("sh", "false | cat\n"),
        ("python", "raise SystemExit(3)\n"),
        ("python", "class Image:\n    def save(self, path): ...\n\nImage().save('a.png')\n"),
    ],
    ids=["sh exit", "sh pipe", "python exit", "python unsaved output"],
)
def test_the_runner_fails_a_failing_block(lang, code, tmp_path, tools):
    with pytest.raises(AssertionError):
        run_block(lang, code, tmp_path, tools)


def test_the_runner_fails_a_missing_promised_output(tmp_path, tools):
    """An output the wrapper logged (here by hand) that the block did not write fails it."""
    code = 'echo "$PWD/nothing.png" >> "$DOCS_OUTPUTS"\n'
    with pytest.raises(AssertionError, match="not written"):
        run_block("sh", code, tmp_path, tools)
