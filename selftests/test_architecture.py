"""docs/ARCHITECTURE.md's claims that a reading of the source can check, checked.

Fast and without a lab: every module of the project is parsed with `ast` (nothing is imported),
its imports resolved to the project's modules, module-level and function-level alike (an import
inside a function still ties the two modules together; only an `if TYPE_CHECKING:` import, which
never runs, is left out). Then:

- the checks (tests/) import nothing of the project: fixtures hand them what they need;
- nothing outside awsenv/targets/ compares a target's name (`target.name == "local"`, `settings.target
  in ("aws", "moto")`, `isinstance(t, LocalTarget)`): callers ask the target for a decision;
- no import cycle between the project's modules;
- the floors hold: each package imports only what ARCHITECTURE.md's table says it may (imports run
  downward), and nothing of the product imports the project's own tests or benchmarks.
"""
from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("awsenv", "common", "compliance", "emulator", "fixtures", "lab", "tests", "selftests", "bench")
SCRIPTS = ("provision", "conftest")

# Who may import whom: ARCHITECTURE.md's floors, top to bottom. A package always may import itself.
MAY_IMPORT = {
    "provision": {"awsenv", "common"},
    "conftest": {"awsenv", "fixtures"},
    "fixtures": {"awsenv", "compliance", "common"},
    "tests": set(),
    "compliance": {"common"},
    "awsenv": {"common"},
    "lab": {"emulator", "common"},
    "emulator": set(),
    "common": set(),
}
# The one crossing the table doesn't show: the local target drives the lab.
EXCEPTIONS = {("awsenv.targets.local", "lab")}
TESTS_AND_TOOLS = ("selftests", "bench")


@functools.cache
def modules() -> dict[str, Path]:
    """Every module of the project by its dotted name."""
    found = {name: REPO / f"{name}.py" for name in SCRIPTS}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _resolved(name: str) -> str | None:
    """The project module `name` is, or lives in (a class or function imported from it); None outside."""
    known = modules()
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def _type_checking_only(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(tree: ast.AST):
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _type_checking_only(node):
            yield from (n for child in node.orelse for n in _import_nodes_of(child))
            continue
        yield from _import_nodes_of(node)


def _import_nodes_of(node: ast.AST):
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        yield node
    else:
        yield from _import_nodes(node)


@functools.cache
def imports(module: str) -> dict[str, int]:
    """{project module imported: line}, for every import in `module`, wherever it stands."""
    path = modules()[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: dict[str, int] = {}
    for node in _import_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            names = [f"{base}.{alias.name}" for alias in node.names]
        for name in names:
            target = _resolved(name)
            if target and target != module:
                found.setdefault(target, node.lineno)
    return found


def _where(module: str, line: int) -> str:
    path = modules()[module]
    return f"{path.relative_to(REPO) if path.is_relative_to(REPO) else path}:{line}"


def _top(module: str) -> str:
    return module.split(".")[0]


def test_the_checks_import_nothing_of_the_project():
    wrong = [f"{_where(m, line)} imports {target}" for m in modules() if _top(m) == "tests"
             for target, line in imports(m).items() if _top(target) != "tests"]
    assert not wrong, "tests/ gets the check API through fixtures, never by import:\n" + "\n".join(wrong)


@functools.cache
def _targets() -> tuple[frozenset[str], frozenset[str]]:
    """The target names and classes, read from the TARGETS table (awsenv/targets/__init__.py)."""
    tree = ast.parse((REPO / "awsenv/targets/__init__.py").read_text())
    table = next(node.value for node in ast.walk(tree) if isinstance(node, ast.Assign)
                 and any(isinstance(t, ast.Name) and t.id == "TARGETS" for t in node.targets))
    assert isinstance(table, ast.Dict)
    names = frozenset(ast.literal_eval(k) for k in table.keys if k is not None)
    classes = frozenset(ast.literal_eval(v).rsplit(".", 1)[1] for v in table.values)
    return names, classes


def _names_a_target(node: ast.expr) -> bool:
    """An expression that names a target: target.name, env.target.name, settings.target, target ..."""
    text = ast.unparse(node)
    return (isinstance(node, ast.Attribute) and node.attr == "name") or "target" in text.lower()


def _is_target_name(node: ast.expr) -> bool:
    names, _ = _targets()
    if isinstance(node, ast.Constant):
        return node.value in names
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return any(_is_target_name(e) for e in node.elts)
    return False


def target_name_decisions(module: str) -> list[str]:
    """Where `module` compares a target's name or asks which target class it holds."""
    _, classes = _targets()
    tree = ast.parse(modules()[module].read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(_is_target_name(s) for s in sides) and any(_names_a_target(s) for s in sides
                                                              if not _is_target_name(s)):
                found.append(f"{_where(module, node.lineno)}: {ast.unparse(node)}")
        elif isinstance(node, ast.Name) and node.id in classes:
            found.append(f"{_where(module, node.lineno)}: {node.id}")
    return found


def _product(module: str) -> bool:
    return _top(module) not in TESTS_AND_TOOLS


def test_nothing_outside_the_targets_compares_a_target_name():
    wrong = [line for m in modules() if _product(m) and not m.startswith("awsenv.targets")
             for line in target_name_decisions(m)]
    assert not wrong, ("only awsenv/targets/ knows which target it is; ask the target for a decision "
                       "instead:\n" + "\n".join(wrong))


def test_the_rule_finds_a_target_name_compared(tmp_path, monkeypatch):
    """The rule above can fail: each way of asking a target for its name is found."""
    sample = tmp_path / "sample.py"
    sample.write_text("def f(target, env, settings, x):\n"
                      "    if target.name == 'local': pass\n"
                      "    if env.target.name in ('aws', 'moto'): pass\n"
                      "    if settings.target != 'moto': pass\n"
                      "    if isinstance(target, LocalTarget): pass\n"
                      "    if x.kind == 'local' or x.get('GatewayId') == 'local': pass\n")
    monkeypatch.setitem(modules(), "sample", sample)
    found = target_name_decisions("sample")
    assert [line.split(": ", 1)[1] for line in found] == [
        "target.name == 'local'", "env.target.name in ('aws', 'moto')", "settings.target != 'moto'", "LocalTarget"]


def import_cycles() -> list[list[str]]:
    """Each set of modules that import one another in a ring (Tarjan's strongly connected components)."""
    graph = {m: sorted(imports(m)) for m in modules()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(m: str) -> None:
        index[m] = low[m] = len(index)
        stack.append(m)
        for n in graph[m]:
            if n not in index:
                visit(n)
                low[m] = min(low[m], low[n])
            elif n in stack:
                low[m] = min(low[m], index[n])
        if low[m] == index[m]:
            ring = []
            while True:
                n = stack.pop()
                ring.append(n)
                if n == m:
                    break
            if len(ring) > 1:
                cycles.append(sorted(ring))
    for m in sorted(graph):
        if m not in index:
            visit(m)
    return cycles


def test_no_import_cycle():
    cycles = import_cycles()
    described = []
    for ring in cycles:
        edges = [f"{_where(m, line)} imports {n}" for m in ring for n, line in imports(m).items() if n in ring]
        described.append(" <-> ".join(ring) + "\n  " + "\n  ".join(edges))
    assert not cycles, "modules that import one another:\n" + "\n".join(described)


def floor_violations() -> list[str]:
    wrong = []
    for m in modules():
        top = _top(m)
        for target, line in imports(m).items():
            other = _top(target)
            if other == top:
                continue
            if _product(m) and other in TESTS_AND_TOOLS:
                wrong.append(f"{_where(m, line)} imports {target}: the product never imports its own tests")
            elif top in MAY_IMPORT and other not in MAY_IMPORT[top] and (m, other) not in EXCEPTIONS:
                allowed = ", ".join(sorted(MAY_IMPORT[top]))
                wrong.append(f"{_where(m, line)} imports {target}: {top}/ may import "
                             + (f"only {allowed}" if allowed else "nothing of the project"))
    return wrong


def test_the_floors_hold():
    wrong = floor_violations()
    assert not wrong, "imports against docs/ARCHITECTURE.md's floors:\n" + "\n".join(wrong)


def documented_table() -> dict[str, set[str]]:
    """ARCHITECTURE.md's "who may import whom": {floor: the floors its row names}."""
    text = (REPO / "docs/ARCHITECTURE.md").read_text()
    rows = text.split("Who may import whom", 1)[1].split("\n\n", 2)[1].splitlines()[2:]
    table = {}
    for row in rows:
        floor, allowed = (cell.strip() for cell in row.strip("|").split("|"))
        names = re.findall(r"`([^`]+)`", allowed)
        # `awsenv/targets/local.py` names the module an exception is for, not a floor it may import.
        table[floor.strip("`").removesuffix("/").removesuffix(".py")] = {
            n.removesuffix("/") for n in names if "/" not in n.removesuffix("/")}
    return table


def test_the_table_is_the_documented_one():
    """This test's table is ARCHITECTURE.md's, row for row, and every package of the product has a row."""
    expected = {floor: allowed | {other for module, other in EXCEPTIONS if _top(module) == floor}
                for floor, allowed in MAY_IMPORT.items()}
    assert documented_table() == expected
    assert {_top(m) for m in modules() if _product(m)} == set(MAY_IMPORT)
