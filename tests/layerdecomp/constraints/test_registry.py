"""The constraint registry: decorator, entry points (a real distribution on sys.path), errors."""

import ast
import importlib
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from layerdecomp import constraints
from layerdecomp.constraints import Constraint, registry


@pytest.fixture
def clean_registry(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setattr(registry, "_loaded_entry_points", set())
    monkeypatch.setattr(registry, "_FAILED", {})


def _package_imports(module: Path) -> set[str]:
    """The modules of the package that ``module`` imports (relative or absolute), at any depth."""
    found = set()
    for node in ast.walk(ast.parse(module.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            found.add(node.module or ",".join(a.name for a in node.names))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("layerdecomp"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("layerdecomp"))
    return found


def test_the_registry_is_a_leaf():
    """registry imports only base, and base imports nothing of the package: no cycle."""
    folder = Path(registry.__file__).parent
    assert _package_imports(folder / "registry.py") == {"base"}
    assert _package_imports(folder / "base.py") == set()
    assert not (folder / "builtin.py").exists()


def test_importing_the_registry_module_first_still_sees_the_builtins():
    """The package __init__ runs before the submodule and registers the built-ins (new process)."""
    code = "from layerdecomp.constraints.registry import available; print(' '.join(available()))"
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert {"blend", "clip_style", "downsample", "mask"} <= set(proc.stdout.split())


def test_builtins_are_registered_with_descriptions():
    known = constraints.available()
    assert known["mask"] is constraints.Mask
    assert constraints.Mask.description().startswith("Inpainting")


def test_decorator_registers_and_build_instantiates(clean_registry):
    @constraints.register("shift")
    class Shift(Constraint):
        """Pull x̂0 toward a constant."""

        def __init__(self, value: float):
            self.value = value

        def error(self, x0):
            e = self.value - x0
            return e, e.flatten(1).abs().amax(1)

    assert constraints.get("shift") is Shift and Shift.name == "shift"
    e, r = constraints.build("shift", value=2.0)(torch.zeros(2, 1, 3, 3))
    assert torch.equal(e, torch.full((2, 1, 3, 3), 2.0)) and r.tolist() == [2.0, 2.0]


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(
        constraints.UnknownConstraintError, match="'nope'.*known constraints: .*mask"
    ):
        constraints.get("nope")


def test_duplicate_registration_warns(clean_registry):
    @constraints.register("dup")
    class First(Constraint):
        """First."""

    with pytest.warns(UserWarning, match="'dup' is registered twice"):

        @constraints.register("dup")
        class Second(Constraint):
            """Second."""

    assert constraints.get("dup") is Second


def test_registering_a_non_constraint_fails(clean_registry):
    with pytest.raises(TypeError, match="not a Constraint subclass"):
        constraints.register("bad")(object)


def write_distribution(root, name, module, body, entry):
    (root / f"{module}.py").write_text(textwrap.dedent(body))
    info = root / f"{name}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[layerdecomp.constraints]\n{entry}\n")


def test_entry_point_plugin_is_discovered(tmp_path, monkeypatch, clean_registry):
    write_distribution(
        tmp_path,
        "fake_plugin",
        "fake_plugin_mod",
        """
        import torch
        from layerdecomp.constraints import Constraint

        class Zero(Constraint):
            '''Pull x̂0 toward zero (a test plugin).'''

            def error(self, x0):
                return -x0, x0.flatten(1).norm(dim=1)
        """,
        "zero = fake_plugin_mod:Zero",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    known = constraints.available()
    assert "zero" in known and known["zero"].description() == "Pull x̂0 toward zero (a test plugin)."
    e, r = constraints.build("zero")(torch.ones(1, 1, 2, 2))
    assert torch.equal(e, -torch.ones(1, 1, 2, 2)) and r.item() == pytest.approx(2.0)
    sys.modules.pop("fake_plugin_mod", None)


def test_broken_plugin_warns_instead_of_failing(tmp_path, monkeypatch, clean_registry):
    write_distribution(
        tmp_path,
        "broken_plugin",
        "broken_plugin_mod",
        "raise ImportError('boom')\n",
        "broken = broken_plugin_mod:Nothing",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    with pytest.warns(UserWarning, match="'broken'.*failed to load: boom"):
        known = constraints.available()
    assert "broken" not in known and "mask" in known
    assert constraints.failed() == {"broken": "broken_plugin_mod:Nothing: ImportError: boom"}


class FakeEntryPoint:
    """What ``importlib.metadata.entry_points`` yields: a name, a value and ``load()``."""

    def __init__(self, name, value, loaded):
        self.name, self.value, self._loaded = name, value, loaded

    def load(self):
        if isinstance(self._loaded, Exception):
            raise self._loaded  # the import of a broken plugin
        return self._loaded


def test_failed_plugins_are_recorded_with_their_error(monkeypatch, clean_registry):
    class Fine(Constraint):
        """A working plugin."""

    eps = [
        FakeEntryPoint("exploding", "exploding_mod:Thing", RuntimeError("exploded on import")),
        FakeEntryPoint("not_a_constraint", "some_mod:helper", object),
        FakeEntryPoint("fine", "fine_mod:Fine", Fine),
    ]
    monkeypatch.setattr(registry, "entry_points", lambda group: eps)
    with pytest.warns(UserWarning) as record:
        known = constraints.available()
    assert len(record) == 2  # one warning per broken plugin, for library users
    assert "'exploding' (exploding_mod:Thing) failed to load" in str(record[0].message)
    assert known["fine"] is Fine and "exploding" not in known and "not_a_constraint" not in known
    failed = constraints.failed()
    assert list(failed) == ["exploding", "not_a_constraint"]
    assert failed["exploding"] == "exploding_mod:Thing: RuntimeError: exploded on import"
    assert failed["not_a_constraint"].startswith("some_mod:helper: TypeError: ")
    assert "is not a Constraint subclass" in failed["not_a_constraint"]
    assert constraints.failed() == failed  # loading again keeps them (and does not warn again)
