"""The package layering of docs/ARCHITECTURE.md, checked on the code's own imports (ast).

The rules are read from the ``layers`` block of docs/ARCHITECTURE.md, so the page and the test cannot
drift apart: a module may import facegen modules of its own layer or of lower layers only, package import
cycles are refused, and an import inside a function is allowed only for an optional dependency whose line
says so (``# optional``).
"""
from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "facegen"
ARCHITECTURE = REPO / "docs" / "ARCHITECTURE.md"
OPTIONAL = {"open_clip", "wandb", "pymeshlab", "h5py", "dlib", "face_recognition_models", "pytorch3d", "gradio",
            "playwright", "facenet_pytorch"}


def layer_table() -> dict[str, int]:
    """``{"facegen.models": 7, ...}`` from the fenced ``layers`` block of ARCHITECTURE.md (lowest layer first)."""
    block = re.search(r"```layers\n(.*?)```", ARCHITECTURE.read_text(), re.S)
    assert block, f"{ARCHITECTURE} has no ```layers block"
    table = {}
    for number, line in enumerate(l for l in block.group(1).splitlines() if l.strip()):
        names = line.split("#")[0].split(":", 1)[1]
        for name in names.replace(",", " ").split():
            table[f"facegen.{name}"] = number
    return table


def module_name(path: Path, root: Path = REPO) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str, table: dict[str, int]) -> tuple[str, int] | None:
    """The longest table entry that is ``module`` or one of its parents."""
    for key in sorted(table, key=len, reverse=True):
        if module == key or module.startswith(key + "."):
            return key, table[key]
    return None


def facegen_imports(path: Path, root: Path = REPO):
    """``(line, imported module, inside a function, source line)`` for every facegen import of ``path``."""
    source = path.read_text()
    tree = ast.parse(source)
    lines = source.splitlines()
    inside = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
              for n in ast.walk(f) if isinstance(n, (ast.Import, ast.ImportFrom))}
    package = module_name(path, root) if path.name == "__init__.py" else module_name(path, root).rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        yield node.lineno, names, id(node) in inside, lines[node.lineno - 1]


SOURCES = sorted(p for p in PACKAGE.rglob("*.py")
                 if "conf" not in p.relative_to(PACKAGE).parts and p != PACKAGE / "__init__.py")  # the root holds a version only


def test_every_module_has_a_layer():
    table = layer_table()
    missing = [str(p.relative_to(REPO)) for p in SOURCES if layer_of(module_name(p), table) is None]
    assert not missing, f"modules without a layer in {ARCHITECTURE.name}: {missing}"


def upward_imports(paths, table: dict[str, int], root: Path = REPO) -> list[str]:
    """One message per module that imports a facegen module of a higher layer, naming both."""
    violations = []
    for path in paths:
        own_key, own = layer_of(module_name(path, root), table)
        for line, names, _, _ in facegen_imports(path, root):
            for name in names:
                target = layer_of(name, table) if name.startswith("facegen") else None
                if target and target[1] > own:
                    violations.append(f"{path.relative_to(root)}:{line} ({own_key}, layer {own}) imports {name} "
                                      f"({target[0]}, layer {target[1]})")
                    break
    return violations


def test_no_import_runs_up_the_layers():
    violations = upward_imports(SOURCES, layer_table())
    assert not violations, "imports from a lower layer to a higher one:\n" + "\n".join(violations)


def test_an_upward_import_is_reported_with_both_names(tmp_path):
    low = tmp_path / "facegen" / "geometry" / "io.py"
    low.parent.mkdir(parents=True)
    low.write_text("from facegen.models.stylegan2.module import StyleGAN2\n")
    [message] = upward_imports([low], layer_table(), root=tmp_path)
    assert message.startswith("facegen/geometry/io.py:1 (facegen.geometry") and "facegen.models.stylegan2.module" in message


def test_no_package_import_cycles():
    """Packages of one layer may use each other, but never both ways round (a cycle hides a missing layer)."""
    table = layer_table()
    graph: dict[str, set[str]] = defaultdict(set)
    for path in SOURCES:
        here = ".".join(module_name(path).split(".")[:3])  # facegen.models.stylegan2, facegen.data.keypoints
        for _, names, _, _ in facegen_imports(path):
            there = ".".join(names[0].split(".")[:3])
            if names[0].startswith("facegen") and there != here and layer_of(names[0], table):
                graph[here].add(there)
    cycles = [f"{a} <-> {b}" for a in graph for b in graph[a] if a < b and a in graph.get(b, ())]
    assert not cycles, f"package import cycles: {cycles}"


def test_imports_inside_functions_are_optional_dependencies_only():
    hidden = []
    for path in SOURCES:
        for line, names, in_function, text in facegen_imports(path):
            if in_function and not (names[0].split(".")[0] in OPTIONAL and "# optional" in text):
                hidden.append(f"{path.relative_to(REPO)}:{line}: {text.strip()}")
    assert not hidden, ("imports inside functions (allowed only for optional dependencies, marked "
                        "'# optional: ...'):\n" + "\n".join(hidden))
