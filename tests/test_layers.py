"""The import direction of docs/architecture.md, read from the source with ast (no module is imported):

db/ imports nothing of the project; the shared contract in app/ imports only itself and db/; streams/ and
webhooks/ import neither each other's internals (but for the console naming the router's group) nor the commands;
no module imports, at load time, a module that imports it back (no cycles); and the state machines import only
pure standard modules, the event models and each other (no I/O)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("app", "db", "streams", "webhooks")
CONTRACT = frozenset({
    "app", "app.settings", "app.events", "app.event_base", "app.agent_events", "app.control_events", "app.envelope",
    "app.topics", "app.jsonio", "app.gitea_repository", "app.producer", "app.observe",
})  # fmt: skip
"""What every package may import from app/: the rest of app/ are the commands (cli, dev, demo, replay, ...)."""
UPWARD_EXCEPTIONS = frozenset({
    # The console (in the web process) re-drives the dlq with the replay's Replayer and shows `trace`'s timeline.
    ("webhooks.console", "app.replay"), ("webhooks.console", "app.replay_records"), ("webhooks.console", "app.trace"),
    ("webhooks.console", "streams.router"),
})  # fmt: skip
"""Known imports against the direction, each by a package prefix: a new one fails this test."""


def modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports(path: Path, known: dict[str, Path], *, load_time_only: bool) -> Iterator[str]:
    """The project modules `path` imports (at load time only: not inside functions or `if TYPE_CHECKING`)."""

    def visit(nodes: list[ast.stmt]) -> Iterator[ast.stmt]:
        for node in nodes:
            if isinstance(node, ast.If) and _type_checking(node):
                if not load_time_only:
                    yield from visit(node.body)
                continue
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and load_time_only:
                continue
            yield node
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.stmt):
                    yield from visit([child])

    for node in visit(ast.parse(path.read_text(encoding="utf-8")).body):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        else:
            continue
        for name in names:
            if name in known:
                yield name


def test_every_import_goes_down() -> None:
    known = modules()
    wrong = []
    for module, path in known.items():
        package = module.split(".")[0]
        for target in set(imports(path, known, load_time_only=False)):
            top = target.split(".")[0]
            if any(module.startswith(a) and target == b for a, b in UPWARD_EXCEPTIONS):
                continue
            if package == "db" and top != "db":
                wrong.append(f"{module} -> {target} (db/ imports nothing of the project)")
            elif module in CONTRACT and top != "db" and target not in CONTRACT:
                wrong.append(f"{module} -> {target} (the contract imports only itself and db/)")
            elif package in ("streams", "webhooks") and top == "app" and target not in CONTRACT:
                wrong.append(f"{module} -> {target} ({package}/ imports no command)")
            elif package in ("streams", "webhooks") and top in ("streams", "webhooks") and top != package:
                wrong.append(f"{module} -> {target} (streams/ and webhooks/ do not import each other)")
    assert not wrong, "imports against docs/architecture.md:\n" + "\n".join(sorted(wrong))


def test_no_module_imports_itself_back_at_load_time() -> None:
    known = modules()
    graph = {m: sorted(set(imports(p, known, load_time_only=True)) - {m}) for m, p in known.items()}
    # A package's __init__ is loaded before its modules: an import of the package itself is no edge back.
    graph = {m: [t for t in targets if not m.startswith(t + ".")] for m, targets in graph.items()}
    cycles: list[list[str]] = []
    state: dict[str, int] = {}

    def walk(module: str, trail: list[str]) -> None:
        state[module] = 1
        for target in graph[module]:
            if state.get(target) == 1:
                cycles.append([*trail[trail.index(target) :], target])
            elif target not in state:
                walk(target, [*trail, target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            walk(module, [module])
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


MACHINE_IMPORTS = frozenset({
    "__future__", "collections", "dataclasses", "datetime", "math", "typing", "uuid",
    "app.event_base", "app.agent_events", "app.control_events", "app.events", "streams.machines",
})  # fmt: skip
"""What the pure state machines (streams/machines/) may import: pure standard modules, the event models, each other."""


def test_the_machines_import_no_io() -> None:
    wrong = []
    for path in sorted((ROOT / "streams" / "machines").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module]
            else:
                continue
            for name in names:
                if not any(name == allowed or name.startswith(allowed + ".") for allowed in MACHINE_IMPORTS):
                    wrong.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not wrong, "the machines are pure (docs/architecture.md), no I/O:\n" + "\n".join(wrong)
