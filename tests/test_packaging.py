"""Packaging: pyproject names every package, and the wheel, installed non-editable into a fresh
environment, ships the recipes and the mini weights and runs recipes from another folder.

The wheel is built from a copy of the sources (``pip wheel`` builds in the tree it is given and
would leave ``build/`` behind). The fresh environment is a ``venv --without-pip`` that sees this
environment's site-packages through a ``.pth`` file written after the wheel is installed: a path
line in a ``.pth`` adds a folder to ``sys.path`` without running the ``.pth`` files in it, so the
editable install's finder stays out and ``layerdecomp`` comes from the venv's own site-packages.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import sysconfig
import zipfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parents[1]
SOURCE_ROOTS = ("solvers", "layerdecomp")
"""Folders whose every package (a folder with ``__init__.py``) must be listed."""
TIMEOUT = 300


def setuptools_config(root: Path = ROOT) -> dict:
    with open(root / "pyproject.toml", "rb") as file:
        return tomllib.load(file)["tool"]["setuptools"]


def package_problems(root: Path, config: dict) -> list[str]:
    """What pyproject's package list gets wrong about the tree under ``root``."""
    listed = set(config.get("packages", []))
    problems = []
    for top in SOURCE_ROOTS:
        for init in sorted((root / top).rglob("__init__.py")):
            folder = init.parent.relative_to(root)
            if "__pycache__" in folder.parts:
                continue
            name = ".".join(folder.parts)
            if name not in listed:
                problems.append(f"{name} ({folder}/) is not in [tool.setuptools] packages")
    if config.get("package-dir", {}).get("layerdecomp._recipes") != "recipes":
        problems.append('package-dir does not map "layerdecomp._recipes" to "recipes"')
    if "layerdecomp._recipes" not in listed:
        problems.append("layerdecomp._recipes is not in [tool.setuptools] packages")
    for name in sorted(listed):
        folder = config.get("package-dir", {}).get(name, name.replace(".", "/"))
        if not (root / folder / "__init__.py").is_file():
            problems.append(f"{name} is listed but {folder}/__init__.py does not exist")
    return problems


def test_package_problems_are_found(tmp_path):
    for folder in ("solvers", "layerdecomp", "layerdecomp/cli", "layerdecomp/new", "recipes"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "__init__.py").write_text("")
    (tmp_path / "layerdecomp" / "__pycache__").mkdir()
    (tmp_path / "layerdecomp" / "data").mkdir()  # no __init__.py: not a package
    config = {
        "packages": ["solvers", "layerdecomp", "layerdecomp.cli", "layerdecomp._recipes", "gone"],
        "package-dir": {"layerdecomp._recipes": "recipes"},
    }
    assert package_problems(tmp_path, config) == [
        "layerdecomp.new (layerdecomp/new/) is not in [tool.setuptools] packages",
        "gone is listed but gone/__init__.py does not exist",
    ]
    config = {"packages": [*config["packages"][:-1], "layerdecomp.new"]}
    assert package_problems(tmp_path, config) == [
        'package-dir does not map "layerdecomp._recipes" to "recipes"',
        "layerdecomp._recipes is listed but layerdecomp/_recipes/__init__.py does not exist",
    ]


def test_pyproject_lists_every_package():
    problems = package_problems(ROOT, setuptools_config())
    assert not problems, "\n".join(problems)


# --- the wheel, installed non-editable -----------------------------------------------------------


def _env() -> dict[str, str]:
    """The subprocesses' environment: no path leaking the sources in, offline, one thread."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(PYTHONNOUSERSITE="1", OMP_NUM_THREADS="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    return env


def _run(args, **kwargs) -> subprocess.CompletedProcess:
    args = [str(a) for a in args]
    result = subprocess.run(
        args, capture_output=True, text=True, timeout=TIMEOUT, env=_env(), **kwargs
    )
    assert result.returncode == 0, (
        f"{' '.join(args)} exited {result.returncode}\n"
        f"stdout: {result.stdout[-2000:]}\nstderr: {result.stderr[-4000:]}"
    )
    return result


def _version(name: str) -> tuple[int, ...]:
    try:
        text = version(name)
    except PackageNotFoundError:
        return ()
    return tuple(int(part) for part in text.split(".")[:2] if part.isdigit())


def _builds_in_place() -> bool:
    """Whether this environment can build the wheel without build isolation: pyproject asks
    setuptools>=68, which writes wheels itself from 70.1 on (before, with ``wheel``)."""
    setuptools = _version("setuptools")
    return setuptools >= (68,) and (setuptools >= (70, 1) or _version("wheel") != ())


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel of the sources: top-level files and the packages' folders, copied first."""
    config = setuptools_config()
    source = tmp_path_factory.mktemp("source")
    for path in ROOT.iterdir():
        if path.is_file():
            shutil.copy2(path, source / path.name)
    folders = {config.get("package-dir", {}).get(n, n).split("/")[0] for n in config["packages"]}
    for folder in sorted(f.split(".")[0] for f in folders):
        ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc")
        shutil.copytree(ROOT / folder, source / folder, ignore=ignore, dirs_exist_ok=True)
    out = tmp_path_factory.mktemp("wheel")
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", out]
    # Without isolation where this environment can (offline); else pip fetches setuptools>=68.
    build += ["--no-build-isolation", "--no-index"] if _builds_in_place() else []
    _run([*build, source])  # an absolute path: a bare name would be looked up on the index
    (found,) = out.glob("layerdecomp-*.whl")
    return found


def test_wheel_ships_the_recipes_the_mini_weights_and_every_module(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {f"layerdecomp/_recipes/{p.name}" for p in (ROOT / "recipes").glob("*.toml")}
    assert "layerdecomp/_recipes/inpaint.toml" in expected
    expected |= {"layerdecomp/weights/mini/model_index.json", "layerdecomp/_recipes/__init__.py"}
    mini = ROOT / "layerdecomp" / "weights" / "mini"
    expected |= {p.relative_to(ROOT).as_posix() for p in mini.rglob("*") if p.is_file()}
    for top in SOURCE_ROOTS:
        expected |= {
            p.relative_to(ROOT).as_posix()
            for p in (ROOT / top).rglob("*.py")
            if "__pycache__" not in p.parts
        }
    missing = sorted(expected - names)
    assert not missing, f"not in {wheel.name}: {missing}"


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    """A fresh venv with the wheel installed (not editable); this environment's packages seen
    through a ``.pth`` written afterwards (pip must not see the editable install)."""
    folder = tmp_path_factory.mktemp("venv") / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", folder])
    python = folder / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--python", python]
    _run([*pip, "install", "--no-deps", "--no-index", wheel])
    purelib = _run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
    ours = [*site.getsitepackages(), sysconfig.get_paths()["purelib"]]
    if site.ENABLE_USER_SITE:
        ours.append(site.getusersitepackages())
    lines = dict.fromkeys(p for p in ours if Path(p).is_dir())
    (Path(purelib.stdout.strip()) / "_test_environment.pth").write_text("\n".join(lines) + "\n")
    return folder


@pytest.fixture
def workdir(tmp_path) -> Path:
    """A working folder outside the repository (no ``./recipes`` to fall back on)."""
    assert ROOT not in tmp_path.resolve().parents
    return tmp_path


PROBE = """
import sys, layerdecomp, layerdecomp._recipes, solvers
print(layerdecomp.__file__)
print(layerdecomp._recipes.__file__)
print(solvers.__file__)
print([getattr(f, "__module__", "") or type(f).__module__ for f in sys.meta_path])
"""


def test_the_installed_package_is_the_wheel(venv, workdir):
    result = _run([venv / "bin" / "python", "-c", PROBE], cwd=workdir)
    *files, finders = result.stdout.strip().splitlines()
    for file in files:
        assert Path(file).resolve().is_relative_to(venv.resolve()), result.stdout
    assert "__editable__" not in finders, finders


def _image_and_mask(folder: Path) -> tuple[Path, Path]:
    from PIL import Image

    image = Image.new("RGB", (16, 16))
    image.putdata([(16 * x, 16 * y, 128) for y in range(16) for x in range(16)])
    image.save(folder / "image.png")
    mask = Image.new("L", (16, 16), 0)
    mask.paste(255, (4, 4, 12, 12))
    mask.save(folder / "mask.png")
    return folder / "image.png", folder / "mask.png"


def test_run_inpaint_from_the_installed_wheel(venv, workdir, sd1_folder):
    image, mask = _image_and_mask(workdir)
    output = workdir / "filled.png"
    args = [venv / "bin" / "layerdecomp", "run", "inpaint", f"image={image}", f"mask={mask}"]
    args += [f"output={output}", f"model={sd1_folder}", "steps=1", "iters=1", "seed=0"]
    _run([*args, "quiet=true"], cwd=workdir)
    assert output.is_file()
    meta = json.loads(output.with_suffix(".json").read_text())
    assert meta["recipe"]["name"] == "inpaint", meta["recipe"]
    path = Path(meta["recipe"]["path"]).resolve()
    assert path.is_relative_to(venv.resolve()), f"recipe read from {path}, not the wheel"


def test_run_decompose_from_the_installed_wheel(venv, workdir, sd1_folder):
    image, _ = _image_and_mask(workdir)
    output = workdir / "layers"
    args = [venv / "bin" / "layerdecomp", "run", "decompose", f"image={image}"]
    args += [f"output={output}", "fg=a", "bg=b", f"model={sd1_folder}", "updates=1"]
    args += ["samples=2", "iters=1", "runs=1", "seed=0", "quiet=true", "work_side=0"]
    _run(args, cwd=workdir)
    assert (output / "run.json").is_file(), sorted(p.name for p in output.iterdir())
