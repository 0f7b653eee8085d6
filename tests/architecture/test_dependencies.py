"""The direction of dependencies, read from the source with `ast`: views, API and dashboard →
services → models and the clock; tasks → services; never the other way, no import cycle, no
import hidden in a function body to get round one, and the request core never imports
fulfilment (fulfilment builds on the request lifecycle, not the reverse)."""

import ast
from pathlib import Path

import pytest

from tests.support import ROOT

PACKAGE = ROOT / "dsr"

# Lowest first: a module may import its own layer and the layers below it, never one above.
CORE, SERVICES, TASKS, ENTRY = 0, 1, 2, 3
LAYER_NAMES = {CORE: "models/clock/helpers", SERVICES: "services", TASKS: "tasks", ENTRY: "views/API/dashboard/wiring"}
CORE_MODULES = {
    "dsr",
    "dsr.clock",
    "dsr.deadlines",
    "dsr.errors",
    "dsr.hooks",
    "dsr.event_types",
    "dsr.identity",
    "dsr.models",
    "dsr.storage",
    "dsr.validators",
    "dsr.roles",
    "dsr.ratelimit",
    "dsr.csv_export",
    "dsr.email_catalogue",
    "dsr.fulfilment",
    "dsr.fulfilment.models",
    "dsr.fulfilment.categories",
    "dsr.fulfilment.datamap",
    "dsr.fulfilment.crypto",
    "dsr.fulfilment.records",
    "dsr.fulfilment.results",
    "dsr.fulfilment.signing",
}
# Connectors talk to the business's systems and nothing else of the product: a helper layer.
CORE_PACKAGES = ("dsr.fulfilment.connectors",)
SERVICE_MODULES = {"dsr.selectors", "dsr.reports"}

# Imports inside a function body, each with its reason written next to it in the source.
FUNCTION_LEVEL_ALLOWED = {
    # Django's AppConfig.ready(): these modules use the models, so they load once the registry is ready.
    ("dsr.apps", "dsr.checks"),
    ("dsr.apps", "dsr.receivers"),
    ("dsr.apps", "dsr.tasks"),
    ("dsr.fulfilment.apps", "dsr.hooks"),
    ("dsr.fulfilment.apps", "dsr.fulfilment.checks"),
    ("dsr.fulfilment.apps", "dsr.fulfilment.connectors"),
    ("dsr.fulfilment.apps", "dsr.fulfilment.tasks"),
    ("dsr.fulfilment.apps", "dsr.fulfilment.wiring"),
    # A migration module loads on every migrate; only this step needs the live hash function.
    ("dsr.migrations.0011_audit_keys_tombstones", "dsr.services.audit"),
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> int:
    if module in CORE_MODULES or module.startswith(CORE_PACKAGES):
        return CORE
    if (
        module in SERVICE_MODULES
        or module.startswith(("dsr.services.", "dsr.fulfilment.services"))
        or module == "dsr.services"
    ):
        return SERVICES
    if module == "dsr.tasks":
        return TASKS
    return ENTRY


class _Imports(ast.NodeVisitor):
    """Every `dsr` import of one module, and whether it sits inside a function body."""

    def __init__(self, known: set[str]):
        self.known = known
        self.depth = 0
        self.found: list[tuple[str, bool, int]] = []  # (imported module, in a function, line)

    def _function(self, node):
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function

    def _add(self, name: str, line: int):
        if name == "dsr" or name.startswith("dsr."):
            self.found.append((name, self.depth > 0, line))

    def visit_Import(self, node):
        for alias in node.names:
            self._add(alias.name, node.lineno)

    def visit_ImportFrom(self, node):
        if node.level or not node.module:
            raise AssertionError(f"relative import at line {node.lineno}: use the absolute module name")
        for alias in node.names:
            # `from dsr.services import intake` imports the module dsr.services.intake.
            submodule = f"{node.module}.{alias.name}"
            self._add(submodule if submodule in self.known else node.module, node.lineno)


def imports_of_package() -> dict[str, list[tuple[str, bool, int]]]:
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for module, path in files.items():
        visitor = _Imports(set(files))
        visitor.visit(ast.parse(path.read_text(), filename=str(path)))
        graph[module] = visitor.found
    return graph


def layer_violations(graph) -> list[str]:
    return [
        f"{module} ({LAYER_NAMES[layer_of(module)]}) imports {target} ({LAYER_NAMES[layer_of(target)]}) at line {line}"
        for module, imports in graph.items()
        for target, _, line in imports
        if layer_of(target) > layer_of(module)
    ]


def cycles(graph) -> list[list[str]]:
    """Strongly connected components of more than one module (or a module importing itself),
    over module-level imports: what Python has to resolve while the modules are half-loaded."""
    edges = {
        m: sorted({t for t, in_function, _ in imports if not in_function and t in graph})
        for m, imports in graph.items()
    }
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in edges[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in edges[node]:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


@pytest.fixture(scope="module")
def graph():
    found = imports_of_package()
    # The reading works: the package is all there and the edges everyone knows are seen.
    assert len(found) > 60
    assert any(t == "dsr.services.intake" for t, _, _ in found["dsr.views"])
    assert any(t == "dsr.services.emails" for t, _, _ in found["dsr.tasks"])
    assert any(t == "dsr.services.transitions" for t, _, _ in found["dsr.services.staff_actions"])
    return found


def test_no_module_imports_a_layer_above_its_own(graph):
    assert layer_violations(graph) == []


def test_services_never_import_views_api_dashboard_or_tasks(graph):
    entry_points = ("dsr.views", "dsr.api", "dsr.dashboard", "dsr.tasks", "dsr.auth_views", "dsr.admin", "dsr.webhooks")
    wrong = [
        (m, t)
        for m, imports in graph.items()
        if layer_of(m) == SERVICES
        for t, _, _ in imports
        if t.startswith(entry_points)
    ]
    assert wrong == []


def test_the_clock_is_pure(graph):
    tree = ast.parse((PACKAGE / "clock.py").read_text())
    modules = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} | {
        a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names
    }
    assert graph["dsr.clock"] == []
    assert not [m for m in modules if m and m.startswith(("django.db", "dsr"))]


def test_no_import_cycle(graph):
    assert cycles(graph) == []


def test_no_import_hidden_in_a_function_body(graph):
    hidden = {(m, t) for m, imports in graph.items() for t, in_function, _ in imports if in_function}
    assert hidden == FUNCTION_LEVEL_ALLOWED


def test_each_allowed_function_level_import_says_why(graph):
    for module, target in FUNCTION_LEVEL_ALLOWED:
        path = PACKAGE.parent / (module.replace(".", "/") + ".py")
        lines = path.read_text().splitlines()
        [line] = {line for t, in_function, line in graph[module] if t == target and in_function}
        nearby = lines[max(0, line - 4) : line]
        assert any("#" in text for text in nearby), f"{module}:{line} imports {target} in a function without a reason"


def test_views_api_and_dashboard_write_no_audit_event_themselves():
    """Every event is written by a service (the internal note too): the entry points never import
    the audit writer."""
    entry_files = [
        PACKAGE / "views.py",
        PACKAGE / "dashboard.py",
        PACKAGE / "auth_views.py",
        PACKAGE / "actions.py",
        *(PACKAGE / "api").glob("*.py"),
    ]
    writers = {"audit_event_record", "audit_tombstone_record"}
    found = [
        (path.name, alias.name)
        for path in entry_files
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
        if alias.name in writers
    ]
    assert found == []


def test_request_transition_is_the_one_door_for_a_status():
    """Only the door sets a request's status (the outbox sets its own rows' status); nothing
    updates it in bulk."""
    setters = []
    for path in PACKAGE.rglob("*.py"):
        if "migrations" in path.parts or "fulfilment" in path.parts:
            # Fulfilment's runs and systems have statuses of their own, set by its services; it
            # moves a request only through the request services (test_fulfilment_runs checks it).
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            targets = (
                node.targets
                if isinstance(node, ast.Assign)
                else [node.target]
                if isinstance(node, ast.AugAssign)
                else []
            )
            setters += [
                (path.relative_to(PACKAGE).as_posix(), ast.unparse(t))
                for t in targets
                if isinstance(t, ast.Attribute) and t.attr == "status"
            ]
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "update":
                setters += [
                    (path.relative_to(PACKAGE).as_posix(), "update(status=…)")
                    for k in node.keywords
                    if k.arg == "status"
                ]
    assert sorted(set(setters)) == [
        ("services/emails.py", "email.status"),
        ("services/transitions.py", "locked.status"),
    ]


def test_the_request_core_never_imports_fulfilment(graph):
    wrong = [
        (m, t)
        for m, imports in graph.items()
        if not m.startswith("dsr.fulfilment")
        for t, _, _ in imports
        if t == "dsr.fulfilment" or t.startswith("dsr.fulfilment.")
    ]
    assert wrong == []


def test_the_checks_see_what_they_forbid():
    """The checks themselves, on a made-up package: a cycle, a service importing a view, and a
    model importing a service are all reported."""
    made_up = {
        "dsr.models": [("dsr.services.intake", False, 1)],
        "dsr.services.intake": [("dsr.views", False, 2), ("dsr.services.transitions", False, 3)],
        "dsr.services.transitions": [("dsr.services.intake", False, 4)],
        "dsr.views": [],
    }
    assert cycles(made_up) == [["dsr.services.intake", "dsr.services.transitions"]]
    assert len(layer_violations(made_up)) == 2
    assert (
        cycles({"dsr.a": [("dsr.b", True, 1)], "dsr.b": [("dsr.a", False, 1)]}) == []
    )  # a function-level import breaks none
