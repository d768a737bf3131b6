"""Module hygiene: sampling and metrics read runs without importing ganforge.training.

The run folder's format lives in ganforge.runs, device and CPU detection in ganforge.devices and
standing BatchNorm statistics in ganforge.models.batchnorm, which training and readers share.
"""
import ast
import json
import subprocess
import sys
from pathlib import Path

import ganforge

SRC = Path(ganforge.__file__).resolve().parent
METRICS = sorted(p.stem for p in (SRC / "metrics").glob("*.py") if p.stem != "__init__")
READERS = ["ganforge.sampling", "ganforge.runs", "ganforge.devices", "ganforge.models.batchnorm",
           "ganforge.metrics", *(f"ganforge.metrics.{name}" for name in METRICS)]


def is_training(module: str) -> bool:
    return module == "ganforge.training" or module.startswith("ganforge.training.")


def test_readers_import_no_training_module():
    code = (
        "import importlib, json, sys\n"
        f"for name in {READERS!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = json.loads(out.strip().splitlines()[-1])
    assert "ganforge.sampling" in loaded and "ganforge.metrics.run_eval" in loaded
    assert [m for m in loaded if is_training(m)] == []


def imported_modules(source: str, package: str) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in ``source``, a module of ``package``,
    including those inside functions."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module
            found.append((node.lineno, module))
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]  # from .. import training
    return found


def test_readers_have_no_deferred_training_imports():
    """Imports inside functions do not show in sys.modules at import time: check the source too."""
    files = [SRC / "sampling.py", SRC / "runs.py", SRC / "devices.py", SRC / "models" / "batchnorm.py",
             *sorted((SRC / "metrics").glob("*.py"))]
    offending = []
    for path in files:
        package = ".".join(("ganforge", *path.relative_to(SRC).parent.parts))
        offending += [f"{path.relative_to(SRC)}:{line}: {module}"
                      for line, module in imported_modules(path.read_text(), package) if is_training(module)]
    assert offending == []


def test_source_scan_sees_training_imports():
    """The scan above recognises the import forms it looks for (so its silence means something)."""
    source = (
        "import ganforge.training.loop\n"
        "from ..training.ema import EMA\n"
        "def f():\n"
        "    from .. import training\n"
        "    from ganforge.training import runtime\n"
    )
    found = [m for _, m in imported_modules(source, "ganforge.metrics")]
    assert sorted(m for m in found if is_training(m)) == sorted([
        "ganforge.training.loop", "ganforge.training.ema", "ganforge.training.ema.EMA", "ganforge.training",
        "ganforge.training", "ganforge.training.runtime",
    ])
    assert not any(is_training(m) for _, m in imported_modules("from ..devices import x\n", "ganforge.metrics"))


def module_files() -> dict[str, tuple[Path, str]]:
    """{module name: (file, package it lives in)} of every ganforge module."""
    modules = {}
    for path in SRC.rglob("*.py"):
        parts = ("ganforge", *path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
            modules[".".join(parts)] = (path, ".".join(parts))
        else:
            modules[".".join(parts)] = (path, ".".join(parts[:-1]))
    return modules


def test_training_imports_nothing_from_privacy_or_federated():
    """The loop knows privacy only through ganforge.extensions; federation drives runs from outside."""
    offending = []
    for name, (path, package) in module_files().items():
        if is_training(name):
            offending += [f"{path.relative_to(SRC)}:{line}: {module}"
                          for line, module in imported_modules(path.read_text(), package)
                          if module.startswith(("ganforge.privacy", "ganforge.federated"))]
    assert offending == []


def import_graph() -> dict[str, set[str]]:
    """{module: the ganforge modules it imports}, deferred imports included and imports under
    ``if TYPE_CHECKING:`` left out (they never run). ``from package import module`` counts as importing the
    module, not the package's ``__init__``."""
    modules = module_files()
    graph = {}
    for name, (path, package) in modules.items():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):  # drop the bodies of `if TYPE_CHECKING:` blocks before scanning
            if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
                node.body = [ast.Pass()]
        found = {module for _, module in imported_modules(ast.unparse(tree), package)}
        deps = set()
        for module in found:
            if any(f"{module}.{other.rpartition('.')[2]}" in found and other.startswith(module + ".")
                   for other in found if other in modules):
                continue  # `from package import module`: the module is the dependency
            while module and module not in modules:
                module = module.rpartition(".")[0]
            if module and module not in (name, "ganforge"):
                deps.add(module)
        graph[name] = deps
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_the_cycle_check_sees_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_validation_imports_no_metrics_module_and_ganforge_no_torch():
    """Each package checks its own options through ganforge.extensions.register_check (metrics: train.eval_*),
    so validation reads no metric module, and the checks register without importing torch."""
    path = SRC / "validation.py"
    assert [m for _, m in imported_modules(path.read_text(), "ganforge") if m.startswith("ganforge.metrics")] == []
    code = ("import json, sys, ganforge, ganforge.extensions as e\n"
            "print(json.dumps(['torch' in sys.modules, sorted(e._CHECKS)]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    torch_loaded, checks = json.loads(out.strip().splitlines()[-1])
    assert not torch_loaded and {"train.eval", "dp"} <= set(checks)


def test_every_metric_name_has_its_function():
    from ganforge.metrics.evaluate import METRICS
    from ganforge.metrics.names import METRIC_NAMES

    assert tuple(METRICS) == METRIC_NAMES and all(fn.__name__ == f"metric_{n}" for n, fn in METRICS.items())
