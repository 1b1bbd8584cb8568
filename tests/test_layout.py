"""The package's layout: imports run one way between the layers, and no module or
function outgrows what a reader can hold."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "dcn_cli"
# Lowest first: a module may import its own layer and those below it, never above.
LAYERS = {"": 0, "data": 1, "model": 2, "train": 3, "inspect": 4, "commands": 5}
TOP_LEVEL_LIMIT = 8
MODULE_LINES = 500
FUNCTION_LINES = 80


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _layer_of(parts: list[str]) -> str:
    """The layer of ``dcn_cli.<parts...>``: its subpackage, or "" for a top-level module."""
    return parts[0] if parts and parts[0] in LAYERS else ""


def _imports(tree: ast.AST) -> list[tuple[int, list[str]]]:
    """Each ``dcn_cli`` import, anywhere in the module: its line and what it names."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "dcn_cli":
                    found.append((node.lineno, alias.name.split(".")[1:]))
        elif isinstance(node, ast.ImportFrom) and node.module:
            parts = node.module.split(".")
            if parts[0] != "dcn_cli":
                continue
            for alias in node.names:  # a module by name (from dcn_cli.data import cache), or not
                named = [*parts[1:], alias.name]
                is_module = PACKAGE.joinpath(*named).with_suffix(".py").exists()
                is_package = PACKAGE.joinpath(*named).is_dir()
                found.append((node.lineno, named if is_module or is_package else parts[1:]))
    return found


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_run_from_higher_layers_to_lower(path):
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts in (["__main__"], ["__init__"]):
        return  # the entry points
    own = _layer_of(parts[:-1]) if len(parts) > 1 else ""
    for line, target in _imports(ast.parse(path.read_text())):
        if not target or target[0] == "__version__":
            continue
        theirs = _layer_of(target)
        assert LAYERS[theirs] <= LAYERS[own], (
            f"{path.relative_to(PACKAGE)}:{line} imports dcn_cli.{'.'.join(target)}: "
            f"layer {own or 'top level'} must not import {theirs or 'top level'}"
        )


def test_the_direction_test_catches_an_import_upwards():
    """The rule above, applied to a made-up data module that imports the train layer."""
    tree = ast.parse("def f():\n    from dcn_cli.train.engine import Engine\n")
    ((line, target),) = _imports(tree)
    assert (line, _layer_of(target)) == (2, "train")
    assert LAYERS[_layer_of(target)] > LAYERS["data"]


def test_the_top_level_holds_few_modules():
    top = [p.name for p in PACKAGE.glob("*.py")]
    assert len(top) <= TOP_LEVEL_LIMIT, sorted(top)
    assert {p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"} == {
        name for name in LAYERS if name
    }


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_modules_and_functions_stay_short(path):
    text = path.read_text()
    assert text.count("\n") <= MODULE_LINES, f"{path.name}: {text.count(chr(10))} lines"
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            lines = node.end_lineno - node.lineno + 1
            assert lines <= FUNCTION_LINES, f"{path.name}:{node.lineno} {node.name}: {lines} lines"


def test_no_import_cycle():
    """No cycle among the modules, inside a layer too, counting imports inside functions."""
    names = {".".join(p.relative_to(PACKAGE).with_suffix("").parts) for p in _modules()}
    graph = {}
    for path in _modules():
        name = ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        targets = {".".join(t) for _, t in _imports(ast.parse(path.read_text()))}
        graph[name] = {t for t in targets if t in names} - {name}

    def cycle_from(node, trail):
        if node in trail:
            return trail[trail.index(node) :] + [node]
        for nxt in sorted(graph.get(node, ())):
            found = cycle_from(nxt, trail + [node])
            if found:
                return found
        return None

    for module in sorted(graph):
        assert cycle_from(module, []) is None, " -> ".join(cycle_from(module, []))
