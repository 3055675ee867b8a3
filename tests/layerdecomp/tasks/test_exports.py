"""The public names of ``layerdecomp`` and ``layerdecomp.tasks`` are the API, never a module.

``layerdecomp.tasks.inpaint`` is both a module and its function; importing every submodule first
(as the CLI does) must not leave the package attribute pointing at the module.
"""

import importlib
import pkgutil
import subprocess
import sys
import types

import layerdecomp


def test_every_exported_name_is_an_object_not_a_module():
    for info in pkgutil.walk_packages(layerdecomp.__path__, "layerdecomp."):
        if info.name.endswith("__main__") or ".training" in info.name or ".data" in info.name:
            continue
        importlib.import_module(info.name)
    import layerdecomp.tasks as tasks

    for package in (layerdecomp, tasks):
        for name in package.__all__:
            value = getattr(package, name)
            assert not isinstance(value, types.ModuleType), f"{package.__name__}.{name}"
    assert callable(tasks.inpaint) and callable(layerdecomp.superres)


def test_a_fresh_import_of_the_function_after_its_module():
    code = (
        "import layerdecomp.tasks.inpaint\n"
        "from layerdecomp.tasks import inpaint\n"
        "from layerdecomp import superres\n"
        "assert callable(inpaint) and callable(superres), (inpaint, superres)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
