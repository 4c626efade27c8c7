"""The layers of the code base: what import-linter cannot see (app.py is a module, not a package)
and what a newcomer relies on."""

import ast
import subprocess
import sys

from cifar_cnn.data.cifar10 import REPO_ROOT


def imported_modules(path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_the_app_uses_the_library_and_its_backend_never_the_training_code():
    modules = imported_modules(REPO_ROOT / "app.py")
    assert not {m for m in modules if m.split(".")[0] == "training"}
    assert "webapp" in modules and "gradio" in modules


def test_importing_the_library_loads_neither_tensorflow_nor_gradio_until_needed():
    code = (
        "import sys, cifar_cnn, cifar_cnn.data\n"
        "print(sorted(m for m in ('tensorflow', 'keras', 'gradio') if m in sys.modules))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.stdout.strip() == "[]", run.stderr
