"""The shape DESIGN.md asks for, checked on the source: no import cycles, a domain that
knows nothing of Slack, and no file so long it needs a table of contents.

Read with `ast`, never imported, so a cycle or a forbidden import fails here with its
path printed rather than somewhere else as an ImportError.
"""

from __future__ import annotations

import ast
from collections import deque
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("bot", "handlers", "rota")

# DESIGN.md, Boundaries: the domain returns data; words and Block Kit for Slack are written
# at the edge (bot/slack, handlers).
DOMAIN = (
    "bot.tickets",
    "rota",
    "bot.mail",
    "bot.stats",
    "bot.health",
    # Phone pages: all but bot/phone/webhooks.py, the HTTP edge that words notices for Slack.
    "bot.phone.numbers",
    "bot.phone.pages",
    "bot.phone.timeline",
    "bot.phone.delivery",
    "bot.phone.settings",
    "bot.phone.twilio_api",
    "bot.phone.seen",
)
SLACK_SIDE = ("bot.slack", "handlers", "slack_sdk", "slack_bolt")

MAX_LINES = 600
# Said in a file's opening docstring or comment when it must stay one file.
STAYS_WHOLE = "stays whole"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def source_files() -> dict[str, Path]:
    """Every module of our packages, by dotted name."""
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            found[module_name(path)] = path
    return found


def imported_names(path: Path, name: str, modules: dict[str, Path]) -> Iterator[tuple[str, int]]:
    """Every module `path` imports (at any depth: function-local and TYPE_CHECKING imports
    count too), with the line; `from pkg import name` is `pkg.name` when that is a module."""
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                # Relative: `.` is this package (a package's own name, or a module's parent).
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            for alias in node.names:
                submodule = f"{target}.{alias.name}"
                yield (submodule if submodule in modules else target), node.lineno


def import_graph() -> dict[str, dict[str, int]]:
    """Our modules and, for each, the modules of ours it imports (with the first line)."""
    modules = source_files()
    graph: dict[str, dict[str, int]] = {}
    for name, path in modules.items():
        edges: dict[str, int] = {}
        for target, line in imported_names(path, name, modules):
            if target in modules and target != name:
                edges.setdefault(target, line)
        graph[name] = edges
    return graph


def tangles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Groups of modules that all import one another, directly or not (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
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
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def find_cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """One cycle through each tangle: breaking it shows the next, if any."""
    return [cycle_within(graph, set(component)) for component in tangles(graph)]


def cycle_within(graph: dict[str, dict[str, int]], component: set[str]) -> list[str]:
    """The shortest cycle through the component's first member, as a closed path."""
    start = min(component)
    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for target in sorted(graph[node]):
            if target == start:
                path = [node]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                return [*reversed(path), start]
            if target in component and target not in came_from:
                came_from[target] = node
                queue.append(target)
    raise AssertionError(f"{sorted(component)} is not strongly connected")


def describe(graph: dict[str, dict[str, int]], cycle: list[str]) -> str:
    steps = [f"{a} (line {graph[a][b]}) -> {b}" for a, b in pairwise(cycle)]
    return "\n    ".join(steps)


def test_find_cycles_finds_a_cycle_and_nothing_in_a_tree() -> None:
    # The checker itself: a cycle of three is reported as a closed path; a tree is not.
    looped = {"a": {"b": 1}, "b": {"c": 2}, "c": {"a": 3}, "d": {"a": 4}}
    assert find_cycles(looped) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"b": 1, "c": 1}, "b": {"c": 1}, "c": {}}) == []


def test_no_import_cycles() -> None:
    graph = import_graph()
    assert graph, "no modules found"
    report = [
        f"  {' -> '.join(cycle)}\n    {describe(graph, cycle)}\n    (tangled together: {', '.join(group)})"
        for group in tangles(graph)
        for cycle in [cycle_within(graph, set(group))]
    ]
    assert not report, "import cycles, function-local imports included:\n" + "\n".join(report)


def test_the_domain_knows_nothing_of_slack() -> None:
    modules = source_files()
    offences = []
    for name, path in modules.items():
        if not any(name == d or name.startswith(d + ".") for d in DOMAIN):
            continue
        for target, line in imported_names(path, name, modules):
            if any(target == s or target.startswith(s + ".") for s in SLACK_SIDE):
                offences.append(f"  {path.relative_to(ROOT)}:{line} imports {target}")
    assert not offences, "the domain imports the Slack side:\n" + "\n".join(sorted(offences))


def opening(path: Path) -> str:
    """A file's module docstring and the comment lines at its top."""
    text = path.read_text(encoding="utf-8")
    docstring = ast.get_docstring(ast.parse(text)) or ""
    comments = []
    for line in text.splitlines():
        if line.startswith("#"):
            comments.append(line)
        elif line.strip():
            break
    return "\n".join([*comments, docstring])


def test_no_file_outside_the_tests_is_longer_than_it_can_be_read() -> None:
    too_long = []
    for path in sorted(ROOT.rglob("*.py")):
        relative = path.relative_to(ROOT)
        if relative.parts[0] in {"tests", ".venv", "build"} or any(p.startswith(".") for p in relative.parts):
            continue
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_LINES and STAYS_WHOLE not in opening(path).lower():
            too_long.append(f"  {relative}: {lines} lines")
    assert not too_long, (
        f"files over {MAX_LINES} lines: split them along their seams, or say at the top why "
        f"one {STAYS_WHOLE!r}:\n" + "\n".join(too_long)
    )
