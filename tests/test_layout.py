"""The code's layout, checked: modules stay short, the engine never imports Scipion, the engine's packages depend
on each other in one direction only, and no module takes part in an import cycle.

Imports are read from the source (every ``import`` statement, also those inside functions), not by importing it,
so the test needs neither TensorFlow nor Scipion.
"""
import ast
import os

import pytest

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "membraneseg")
ENGINE = "membraneseg.engine"
MAX_LINES = 400
SCIPION = ("pyworkflow", "pwem", "tomo")
# What each package of the engine may import (besides itself and membraneseg.constants / the version): the order
# of the engine's docstring. The command line may import everything; nothing may import it.
ALLOWED = {
    "core": set(),
    "preprocessing": {"core"},
    "simulation": {"core", "preprocessing"},
    "network": {"core"},
    "measurement": {"core"},
    "segmentation": {"core", "preprocessing", "network"},
    "training": {"core", "preprocessing", "network", "measurement"},
    "gan": {"core", "preprocessing", "network"},
    "vesicles": {"core", "measurement"},
    "cli": {"core", "simulation", "preprocessing", "network", "measurement", "segmentation", "training", "gan",
            "vesicles"},
}


def modules():
    """{dotted module name: path} of every module of the membraneseg package."""
    found = {}
    for folder, _, files in os.walk(ROOT):
        for name in files:
            if name.endswith(".py"):
                rel = os.path.relpath(os.path.join(folder, name), os.path.dirname(ROOT))[:-3].split(os.sep)
                if rel[-1] == "__init__":
                    rel = rel[:-1]
                found[".".join(rel)] = os.path.join(folder, name)
    return found


MODULES = modules()


def _targets(node, package):
    """The absolute names one import statement brings in (``from a import b`` gives a.b when a.b is a module, else
    a)."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names}
    base = node.module or ""
    if node.level:
        parts = package.split(".")
        base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
    return {base + "." + a.name if base + "." + a.name in MODULES else base for a in node.names}


def _tree(name):
    """(syntax tree, package) of a module."""
    path = MODULES[name]
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    return tree, name if path.endswith("__init__.py") else name.rpartition(".")[0]


def imports(name):
    """The absolute names a module imports, also inside functions."""
    tree, package = _tree(name)
    return {t for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
            for t in _targets(node, package)}


def module_level_imports(name):
    """Like ``imports``, but only the imports that run when the module is imported (not those inside functions)."""
    tree, package = _tree(name)
    out, todo = set(), list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.ClassDef):
            todo += [n for n in node.body if not isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        elif isinstance(node, (ast.If, ast.Try)):
            todo += node.body + node.orelse + getattr(node, "finalbody", []) + \
                [n for h in getattr(node, "handlers", []) for n in h.body]
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            out |= _targets(node, package)
    return out


def engine_package(name):
    """'training' for membraneseg.engine.training.loop; None outside the engine's packages."""
    parts = name.split(".")
    return parts[2] if name.startswith(ENGINE + ".") and len(parts) > 2 and parts[2] in ALLOWED else None


def test_no_module_is_over_400_lines():
    long = {}
    for name, path in MODULES.items():
        if ".tests" in name:
            continue
        with open(path, encoding="utf-8") as f:
            n = sum(1 for _ in f)
        if n > MAX_LINES:
            long[name] = n
    assert not long, "modules over %d lines: %s" % (MAX_LINES, long)


def test_the_engine_is_split_into_packages_that_say_what_they_hold():
    packages = [p for p in ALLOWED if ENGINE + "." + p in MODULES]
    assert len(packages) == len(ALLOWED) >= 4
    top = [n for n in MODULES if n.startswith(ENGINE + ".") and n.count(".") == 2 and n.split(".")[2] not in ALLOWED]
    assert top == ["membraneseg.engine.__main__"], "engine modules outside a package: %s" % top
    for package in packages:
        with open(MODULES[ENGINE + "." + package], encoding="utf-8") as f:
            doc = ast.get_docstring(ast.parse(f.read()))
        assert doc and len(doc) > 80, "%s has no docstring saying what it holds" % package


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n.startswith(ENGINE)))
def test_the_engine_never_imports_scipion(name):
    bad = sorted(i for i in imports(name) if i.split(".")[0] in SCIPION)
    assert not bad, "%s imports %s" % (name, bad)


def test_engine_packages_import_only_the_packages_below_them():
    wrong = []
    for name in MODULES:
        package = engine_package(name)
        if package is None:
            continue
        for target in imports(name):
            if target.startswith("membraneseg") and not target.startswith(ENGINE):
                if target not in ("membraneseg", "membraneseg.constants"):
                    wrong.append("%s -> %s (outside the engine)" % (name, target))
                continue
            other = engine_package(target)
            if target.startswith(ENGINE) and other is None and target != ENGINE:
                wrong.append("%s -> %s (not in a package)" % (name, target))
            elif other and other != package and other not in ALLOWED[package]:
                wrong.append("%s -> %s" % (name, target))
    assert not wrong, "imports against the direction of the layout:\n" + "\n".join(wrong)


# What only the model environment has: Scipion's own Python has numpy, scipy, mrcfile, tifffile and matplotlib,
# not these (seen in a Scipion installed by scipion-installer, scripts/scipion_install_check.sh).
ENGINE_ONLY = ("cv2", "numba", "tensorflow", "keras")
SCIPION_SIDE = ("membraneseg.plugin", "membraneseg.objects", "membraneseg.protocols", "membraneseg.viewers")


def test_the_scipion_side_loads_without_the_model_environment():
    """Protocols and viewers load in Scipion's Python: nothing they import when loaded (through the engine modules
    they use too) may import OpenCV, numba or TensorFlow, which only the model environment has."""
    seen, todo, bad = set(), [n for n in MODULES if n.startswith(SCIPION_SIDE)], []
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for target in module_level_imports(name):
            if target.split(".")[0] in ENGINE_ONLY:
                bad.append("%s imports %s" % (name, target))
            for parent in (target, target.rpartition(".")[0]):
                if parent in MODULES and parent not in seen:
                    todo.append(parent)
    assert not bad, "the Scipion side would fail to load without the model environment:\n" + "\n".join(bad)


def test_nothing_outside_the_command_line_imports_it():
    users = sorted(n for n in MODULES if engine_package(n) != "cli" and n != ENGINE + ".__main__"
                   and any(engine_package(t) == "cli" for t in imports(n)))
    assert not users, users


def test_no_import_cycle_between_modules():
    graph = {n: {t for t in imports(n) if t in MODULES and t != n} for n in MODULES}
    # a package's __init__ importing its own modules is how a package shows its public names, not a cycle
    for n in graph:
        graph[n] = {t for t in graph[n] if not n.startswith(t + ".")}
    cycles = strongly_connected(graph)
    assert not cycles, "import cycles: %s" % cycles


def strongly_connected(graph):
    """The components of more than one module (Tarjan's algorithm, iterative)."""
    index, low, on_stack, stack, out, counter = {}, {}, set(), [], [], [0]
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    out.append(sorted(component))
    return out


def test_the_cycle_finder_finds_a_cycle():
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert strongly_connected({"a": {"b"}, "b": set()}) == []
