"""Rules of the house that a reader of one file cannot see: checked over the whole package.

The import rules (which package may import which, and no import circles) and the size rule are plain functions
over a folder, so each test below that runs them on ``bot/`` has a twin running them on a small made-up package
in which the rule is broken, proving the check can fail.

Long because each check and the made-up packages proving it can fail are read best side by side.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

BOT = Path(__file__).resolve().parent.parent / "bot"


def test_no_assert_guards_runtime_code() -> None:
    """`python -O` strips asserts: an invariant the bot relies on is an explicit check raising a clear error.
    (The sandbox, a test double, is exempt.)"""
    found = [f"{path.relative_to(BOT.parent)}:{node.lineno}"
             for path in sorted(BOT.rglob("*.py")) if "sandbox" not in path.parts
             for node in ast.walk(ast.parse(path.read_text(), str(path))) if isinstance(node, ast.Assert)]
    assert found == [], found


# ---- reading the imports --------------------------------------------------------------------------

@dataclass(frozen=True)
class Import:
    """One edge of the module graph: module ``importer`` (file ``path``) loads module ``target`` at ``line``."""

    importer: str
    path: str
    line: int
    target: str
    type_only: bool  # under ``if TYPE_CHECKING:``: mypy reads it, Python never runs it


def _modules(package: Path) -> dict[str, Path]:
    """Dotted name → file, for every module of the package (``bot/core/__init__.py`` is ``bot.core``)."""
    found = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


ImportNode = ast.Import | ast.ImportFrom


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(body: Iterable[ast.stmt], type_only: bool = False) -> Iterator[tuple[ImportNode, bool]]:
    """Every import statement, at any depth (inside functions, classes, try blocks too), flagged when it sits in
    the body of an ``if TYPE_CHECKING:``."""
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node, type_only
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from _import_nodes(node.body, True)
            yield from _import_nodes(node.orelse, type_only)
        else:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.stmt):
                    yield from _import_nodes([child], type_only)
                elif isinstance(child, ast.ExceptHandler | ast.match_case):
                    yield from _import_nodes(child.body, type_only)


def _known(name: str, modules: dict[str, Path]) -> str:
    """The longest prefix of ``name`` that is a module of the package (``bot.x.y.Thing`` → ``bot.x.y``)."""
    while name not in modules and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def read_imports(package: Path) -> list[Import]:
    """Every import of ``package``'s own modules made anywhere in ``package``, resolved to the module it loads:
    ``from bot.core import catalog`` reaches ``bot.core.catalog`` (a submodule), ``from bot.core import Event``
    reaches ``bot.core`` (its ``__init__``); relative imports are resolved against the importer."""
    modules, top = _modules(package), package.name
    found = []
    for importer, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        here = importer if path.name == "__init__.py" else importer.rpartition(".")[0]
        for node, type_only in _import_nodes(tree.body):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = here.split(".")[:len(here.split(".")) - node.level + 1]
                    base = ".".join([*anchor, *([base] if base else [])])
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            for target in dict.fromkeys(targets):
                if target == top or target.startswith(top + "."):
                    found.append(Import(importer, str(path.relative_to(package.parent)), node.lineno,
                                        _known(target, modules), type_only))
    return found


# ---- which package may import which ---------------------------------------------------------------

@dataclass(frozen=True)
class Rule:
    """Modules under ``scope`` may import of the package only ``allowed`` (when given), never ``forbidden``."""

    scope: str
    says: str
    allowed: tuple[str, ...] | None = None
    forbidden: tuple[str, ...] = ()

    def breaks(self, target: str) -> bool:
        if self.allowed is not None and not _under(target, self.allowed):
            return True
        return _under(target, self.forbidden)


def _under(module: str, prefixes: Iterable[str]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


# Imports under `if TYPE_CHECKING:` count here: a type named is still a dependency on the package that defines it.
RULES = (
    Rule("bot.core", "bot/core is pure: it imports nothing else of bot (not bot.settings or bot.logs either)",
         allowed=("bot.core",)),
    Rule("bot.web", "bot/web imports only bot/core, bot/store, bot/settings.py and bot/logs.py of bot (never bot.run, "
         "bot.agents or bot.github)", allowed=("bot.web", "bot.core", "bot.store", "bot.settings", "bot.logs")),
    Rule("bot.agents", "bot/agents imports only bot/core of bot (never bot.store or bot.run)",
         allowed=("bot.agents", "bot.core")),
    Rule("bot.store", "bot/store imports nothing else of bot", allowed=("bot.store",)),
    # ARCHITECTURE.md allowed "github's public types only"; the sandbox has never needed them: it is the double
    # of GitHub's and Anthropic's HTTP APIs, and shares no code with the client it stands in for.
    Rule("bot.sandbox", "bot/sandbox imports nothing else of bot", allowed=("bot.sandbox",)),
    # The shared leaves and the GitHub side sit below everything that acts; the job side never loads the verbs or
    # the test doubles. With the rules above, only bot/cli can import bot/run.
    Rule("bot.settings", "bot/settings.py imports only bot/core of bot", allowed=("bot.settings", "bot.core")),
    Rule("bot.logs", "bot/logs.py imports only bot/core of bot", allowed=("bot.logs", "bot.core")),
    Rule("bot.github", "bot/github imports only bot/core, bot/store, bot/settings.py and bot/logs.py of bot",
         allowed=("bot.github", "bot.core", "bot.store", "bot.settings", "bot.logs")),
    Rule("bot.run", "bot/run never imports bot.cli or bot.sandbox", forbidden=("bot.cli", "bot.sandbox")),
    Rule("bot.__main__", "bot/__main__.py is a thin entry: it imports only bot/cli", allowed=("bot.__main__", "bot.cli")),
)


def layer_violations(imports: Iterable[Import], rules: Iterable[Rule] = RULES) -> list[str]:
    """``path:line: module imports target — rule`` for each import a rule forbids."""
    rules = list(rules)
    return [f"{i.path}:{i.line}: {i.importer} imports {i.target} — rule: {rule.says}"
            for i in imports for rule in rules if _under(i.importer, [rule.scope]) and rule.breaks(i.target)]


# ---- no import circles ----------------------------------------------------------------------------

def _components(graph: dict[str, dict[str, Import]]) -> list[list[str]]:
    """Strongly connected components (Tarjan, iterative so a deep package cannot hit the recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph.get(nxt, {})))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
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
                    found.append(sorted(component))
    return found


def _circle_from(start: str, graph: dict[str, dict[str, Import]], within: set[str]) -> list[Import]:
    """The shortest chain of imports from ``start`` back to itself, staying inside one component."""
    paths: dict[str, list[Import]] = {start: []}
    queue = [start]
    for node in queue:
        for nxt, edge in sorted(graph.get(node, {}).items()):
            if nxt == start:
                return [*paths[node], edge]
            if nxt in within and nxt not in paths:
                paths[nxt] = [*paths[node], edge]
                queue.append(nxt)
    return []


def import_circles(imports: Iterable[Import]) -> list[str]:
    """One circle per knot of modules that import each other, as ``a (path:line) → b (path:line) → a``.

    The graph has every import Python runs, at any depth (an import inside a function closes a circle too, only
    later), and leaves out those under ``if TYPE_CHECKING:``. It has only the edges written: importing
    ``bot.x.y`` runs ``bot/x/__init__.py`` first, but a package importing its own submodules is no circle.
    """
    graph: dict[str, dict[str, Import]] = {}
    for i in imports:
        if not i.type_only:
            graph.setdefault(i.importer, {}).setdefault(i.target, i)
    found = []
    for component in _components(graph):
        start = component[0]
        if len(component) == 1 and start not in graph.get(start, {}):
            continue
        chain = _circle_from(start, graph, set(component))
        found.append("import circle — rule: no module imports one that imports it back: " + " → ".join(
            [f"{e.importer} ({e.path}:{e.line})" for e in chain] + [start]))
    return found


# ---- size -----------------------------------------------------------------------------------------

MAX_LINES = 400
# A module may run longer when its docstring has a line saying why, starting with one of these.
LONG_BECAUSE = re.compile(r"^\s*(Long because|One module because)\b", re.MULTILINE)


def oversized(package: Path, limit: int = MAX_LINES) -> list[str]:
    """Each module over ``limit`` lines whose docstring has no line starting "Long because" or "One module
    because"."""
    found = []
    for path in sorted(package.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        lines = len(text.splitlines())
        if lines > limit and not LONG_BECAUSE.search(ast.get_docstring(ast.parse(text, str(path))) or ""):
            found.append(f"{path.relative_to(package.parent)}: {lines} lines, over {limit} — rule: a longer module "
                         "says why in its docstring, on a line starting 'Long because' or 'One module because'")
    return found


# ---- the docs name only what exists --------------------------------------------------------------

DOCS = ("README.md", "SECURITY.md", "benchmarks/README.md", "Dockerfile", "workflows/README.md")
_PATH = re.compile(r"\bbot/[A-Za-z0-9_/]*(?:\.py)?")
_DOTTED = re.compile(r"\bbot(?:\.[a-z_]+)+")


def missing_names(root: Path, docs: Iterable[str] = DOCS) -> list[str]:
    """``doc:line: name`` for each ``bot/...`` path or ``bot.x.y`` module a document names that the tree has not
    (a dotted name counts only when its first part is a module of ``bot``: ``bot.http`` is a logger)."""
    found = []
    for doc in docs:
        for number, line in enumerate((root / doc).read_text(encoding="utf-8").splitlines(), 1):
            names = [(m, root / m) for m in _PATH.findall(line)]
            names += [(m, root / m.replace(".", "/")) for m in _DOTTED.findall(line)
                      if (root / "bot" / m.split(".")[1]).exists() or (root / f"bot/{m.split('.')[1]}.py").exists()]
            found += [f"{doc}:{number}: {name}" for name, path in names
                      if not (path.exists() or path.with_suffix(".py").exists())]
    return found


# ---- the rules, on the bot ------------------------------------------------------------------------

def test_packages_import_only_what_the_architecture_allows() -> None:
    found = layer_violations(read_imports(BOT))
    assert found == [], "\n".join(found)


def test_no_import_circles() -> None:
    found = import_circles(read_imports(BOT))
    assert found == [], "\n".join(found)


def test_no_module_over_400_lines_without_saying_why() -> None:
    found = oversized(BOT)
    assert found == [], "\n".join(found)


def test_the_bot_has_imports_to_read() -> None:
    """A reader that found nothing would pass every rule: it sees the imports the bot is known to make."""
    found = read_imports(BOT)
    edges = {(i.importer, i.target) for i in found}
    assert len(found) > 100
    assert ("bot.cli.setup", "bot.settings") in edges  # `from bot import settings as ...`: a submodule
    assert ("bot.cli.common", "bot.cli.envfile") in edges  # inside a function
    assert any(i.type_only for i in found)
    assert any(i.importer.startswith("bot.sandbox.") and i.target.startswith("bot.sandbox.") for i in found)


def test_docs_name_only_modules_that_exist() -> None:
    found = missing_names(BOT.parent)
    assert found == [], "\n".join(found)


# ---- each check can fail: a made-up package breaking one rule at a time -------------------------

def _package(root: Path, files: dict[str, str]) -> Path:
    """A package ``bot`` under ``root`` holding ``files`` (paths relative to it), every folder a package."""
    for name, text in files.items():
        path = root / "bot" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for folder in [root / "bot", *(p for p in (root / "bot").rglob("*") if p.is_dir())]:
        (folder / "__init__.py").touch()
    return root / "bot"


def test_core_importing_settings_is_caught(tmp_path: Path) -> None:
    bot = _package(tmp_path, {"settings.py": "", "core/engine.py": "import os\n\ndef f():\n    from bot import settings\n"})
    assert layer_violations(read_imports(bot)) == [
        "bot/core/engine.py:4: bot.core.engine imports bot.settings — rule: bot/core is pure: it imports nothing else "
        "of bot (not bot.settings or bot.logs either)"]


def test_core_importing_within_core_is_allowed(tmp_path: Path) -> None:
    bot = _package(tmp_path, {"core/a.py": "from bot.core import b\nfrom . import b\n", "core/b.py": ""})
    assert layer_violations(read_imports(bot)) == []


def test_web_importing_run_agents_or_github_is_caught(tmp_path: Path) -> None:
    bot = _package(tmp_path, {"run/jobs.py": "", "agents/gate.py": "", "github/client.py": "", "store/base.py": "",
                              "web/server.py": ("from bot.run.jobs import x\nimport bot.agents.gate\n"
                                                "from bot.github import client\nfrom bot.store import base\n")})
    assert [v.split(" — ")[0] for v in layer_violations(read_imports(bot))] == [
        "bot/web/server.py:1: bot.web.server imports bot.run.jobs",
        "bot/web/server.py:2: bot.web.server imports bot.agents.gate",
        "bot/web/server.py:3: bot.web.server imports bot.github.client"]


def test_agents_importing_store_or_run_is_caught(tmp_path: Path) -> None:
    bot = _package(tmp_path, {"store/base.py": "", "run/x.py": "", "agents/runner.py": (
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from bot.store import Store\n"
        "try:\n    pass\nexcept ImportError:\n    import bot.run.x\n")})
    found = layer_violations(read_imports(bot))
    assert [v.split(" — ")[0] for v in found] == ["bot/agents/runner.py:3: bot.agents.runner imports bot.store",
                                                  "bot/agents/runner.py:7: bot.agents.runner imports bot.run.x"]
    assert found[0].endswith("rule: bot/agents imports only bot/core of bot (never bot.store or bot.run)")


def test_store_importing_settings_is_caught(tmp_path: Path) -> None:
    bot = _package(tmp_path, {"logs.py": "", "store/sqlite.py": "from ..logs import log\n"})
    assert layer_violations(read_imports(bot)) == [
        "bot/store/sqlite.py:1: bot.store.sqlite imports bot.logs — rule: bot/store imports nothing else of bot"]


def test_sandbox_importing_github_is_caught(tmp_path: Path) -> None:
    bot = _package(tmp_path, {"github/client.py": "", "sandbox/github.py": "from bot.github.client import Client\n"})
    assert layer_violations(read_imports(bot)) == [
        "bot/sandbox/github.py:1: bot.sandbox.github imports bot.github.client — rule: bot/sandbox imports nothing "
        "else of bot"]


def test_leaves_github_and_run_importing_above_them_is_caught(tmp_path: Path) -> None:
    bot = _package(tmp_path, {"settings.py": "import bot.logs\n", "logs.py": "from bot.core import x\n", "core/x.py": "",
                              "github/client.py": "from bot.web import metrics\nfrom bot.store import Store\n",
                              "web/metrics.py": "", "store/base.py": "",
                              "run/jobs.py": "from bot.sandbox import github\nfrom bot.github import client\n",
                              "sandbox/github.py": ""})
    assert [v.split(" — ")[0] for v in layer_violations(read_imports(bot))] == [
        "bot/github/client.py:1: bot.github.client imports bot.web.metrics",
        "bot/run/jobs.py:1: bot.run.jobs imports bot.sandbox.github",
        "bot/settings.py:1: bot.settings imports bot.logs"]


def test_an_import_circle_is_caught_with_its_path(tmp_path: Path) -> None:
    bot = _package(tmp_path, {"a.py": "import bot.b\n", "b.py": "x = 1\n\ndef f():\n    from bot import c\n",
                              "c.py": "from bot.a import y\n", "d.py": "import bot.a\n",
                              "e.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import bot.d\n"})
    (bot / "d.py").write_text("import bot.a\nimport bot.e\n")
    assert import_circles(read_imports(bot)) == [
        "import circle — rule: no module imports one that imports it back: bot.a (bot/a.py:1) → bot.b (bot/b.py:4) "
        "→ bot.c (bot/c.py:1) → bot.a"]


def test_a_module_importing_itself_is_a_circle(tmp_path: Path) -> None:
    bot = _package(tmp_path, {"core/__init__.py": "from bot.core.x import y\n", "core/x.py": "from bot.core import z\n"})
    assert import_circles(read_imports(bot)) == [
        "import circle — rule: no module imports one that imports it back: bot.core (bot/core/__init__.py:1) → "
        "bot.core.x (bot/core/x.py:1) → bot.core"]


def test_an_oversized_module_without_a_reason_is_caught(tmp_path: Path) -> None:
    bot = _package(tmp_path, {"short.py": "x = 1\n" * 400,
                              "long.py": '"""Does a thing."""\n' + "x = 1\n" * 400,
                              "excused.py": '"""Does a thing.\n\nLong because one table.\n"""\n' + "x = 1\n" * 400,
                              "also.py": '"""Does a thing.\n\nOne module because one class.\n"""\n' + "x = 1\n" * 400})
    assert oversized(bot) == ["bot/long.py: 401 lines, over 400 — rule: a longer module says why in its docstring, on "
                              "a line starting 'Long because' or 'One module because'"]


def test_a_doc_naming_a_module_gone_is_caught(tmp_path: Path) -> None:
    _package(tmp_path, {"core/engine.py": "", "settings.py": ""})
    (tmp_path / "README.md").write_text("See `bot/core/engine.py`, `bot/core/`, `bot.settings`, the `bot.http` log.\n"
                                        "Gone: `bot/engine.py`, `bot/run/`, `import bot.core.render`.\n")
    assert missing_names(tmp_path, ["README.md"]) == [
        "README.md:2: bot/engine.py", "README.md:2: bot/run/", "README.md:2: bot.core.render"]
