"""The import direction of docs/architecture.md, read from the source with ast (no module is imported):

db/ imports nothing of the project; the shared contract (the modules at app/'s top level) imports only itself and
db/; streams/ and webhooks/ import the contract and db/, not each other; the commands (app/commands/, and
app/__main__.py that starts them) may import everything, and nothing else imports them (tests and bench/ may);
no module imports, at load time, a module that imports it back (no cycles); and the state machines import only
pure standard modules, the event models and each other (no I/O)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("app", "db", "streams", "webhooks")
UPWARD_EXCEPTIONS: frozenset[tuple[str, str]] = frozenset()
"""Known imports against the direction, (importer's package prefix, imported module): none; a new one fails this
test (add it here, with why, only when moving the code down is worse)."""


def layer(module: str) -> str:
    """`db`, `contract`, `streams`, `webhooks` or `commands`."""
    if module == "app.__main__" or module == "app.commands" or module.startswith("app.commands."):
        return "commands"
    top = module.split(".")[0]
    return "contract" if top == "app" else top


def wrong_import(module: str, target: str) -> str | None:
    """Why `module` may not import `target`, or None when the direction allows it."""
    if any(module.startswith(a) and target == b for a, b in UPWARD_EXCEPTIONS):
        return None
    importer, imported = layer(module), layer(target)
    if importer == "commands" or imported == importer or imported == "db":
        return None
    if importer == "db":
        return "db/ imports nothing of the project"
    if imported == "commands":
        return "nothing but app/commands/ imports a command"
    if importer == "contract":
        return "the contract (app/ top level) imports only itself and db/"
    if imported != "contract":
        return "streams/ and webhooks/ do not import each other"
    return None


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
    assert {layer(m) for m in known} == {"db", "contract", "streams", "webhooks", "commands"}, "a layer has no module"
    wrong = []
    for module, path in known.items():
        for target in set(imports(path, known, load_time_only=False)):
            why = wrong_import(module, target)
            if why is not None:
                wrong.append(f"{module} -> {target} ({why})")
    assert not wrong, "imports against docs/architecture.md:\n" + "\n".join(sorted(wrong))


def test_the_rule_itself() -> None:
    allowed = [
        ("app.commands.cli", "streams.worker"), ("app.__main__", "app.commands.cli"), ("app.commands.replay_cli", "app.replay"),
        ("app.replay", "app.settings"), ("app.trace", "db.trace"), ("webhooks.console.jobs", "app.replay"),
        ("streams.fold", "app.topics"), ("streams.fold", "streams.route"),
    ]  # fmt: skip
    refused = [
        ("app.replay", "app.commands.replay_dry"), ("app.trace", "streams.route"), ("app", "webhooks.server"),
        ("webhooks.console.jobs", "app.commands.replay_cli"), ("streams.worker", "app.commands"), ("db.pool", "app.settings"),
        ("webhooks.console.pipeline", "streams.router"), ("streams.router", "webhooks.publisher"),
    ]  # fmt: skip
    assert [pair for pair in allowed if wrong_import(*pair)] == []
    assert [pair for pair in refused if not wrong_import(*pair)] == []


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
