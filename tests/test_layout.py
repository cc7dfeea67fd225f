"""The house's layout, kept: product code never leans on test support, the docs name only files that exist and
nothing outside the repository, and the YAML files people write are refused the same way everywhere.

Test support (fixtures, synthetic test counties, warehouse builders) lives in ``tests/support/`` (shared) or beside
the tests that use it; the shipped packages (``orchestration``, ``ml``, ``expectations``, ``partner``) never import
it. docs/architecture.md's map of domains names each domain's folder at each layer: the paths it names must exist.
"""

from __future__ import annotations

import ast
import copy
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = ("orchestration", "ml", "expectations", "partner")
#: file names that say "I am test support" (pytest's own or ours): they belong under tests/
TEST_SUPPORT_NAMES = re.compile(r"^(conftest|testdata|.*_fixtures?|fixtures?|test_.*)\.py$")
DOCS = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]
TOP = ("orchestration/", "tests/", "docs/", "dbt_project/", "expectations/", "ml/", "benchmarks/", "infra/",
       "partner/", ".ci/")


def _product_files() -> list[Path]:
    return sorted(p for top in PRODUCT for p in (ROOT / top).rglob("*.py") if ".venv" not in p.parts)


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def test_product_code_never_imports_test_support():
    offenders = {str(p.relative_to(ROOT)): sorted(n for n in _imports(p) if n == "tests" or n.startswith("tests."))
                 for p in _product_files()}
    offenders = {k: v for k, v in offenders.items() if v}
    assert not offenders, f"product code must not import from tests/ (move what it needs into lib/): {offenders}"


def test_no_test_support_lives_in_product_code():
    found = [str(p.relative_to(ROOT)) for p in _product_files() if TEST_SUPPORT_NAMES.match(p.name)]
    assert not found, f"test support belongs in tests/support/ (or beside its tests), not in product code: {found}"


def _private_dagster_modules(path: Path) -> list[str]:
    """Modules of the Dagster family (``dagster``, ``dagster_dbt`` ...) that ``path`` imports from a private
    (underscored) part: those change without notice between releases."""
    return sorted(n for n in _imports(path) if n.split(".")[0].startswith("dagster")
                  and any(part.startswith("_") for part in n.split(".")[1:]))


def test_product_code_uses_only_public_dagster_apis():
    offenders = {str(p.relative_to(ROOT)): _private_dagster_modules(p) for p in _product_files()}
    offenders = {k: v for k, v in offenders.items() if v}
    assert not offenders, ("product code must use Dagster's public API (``import dagster as dg``); a name Dagster "
                           f"keeps private is written once in our code with a drift test: {offenders}")


def test_the_private_dagster_guard_sees_a_private_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import dagster as dg\nfrom dagster._core.errors import DagsterError\n"
                   "import dagster_dbt._internal as x\nfrom dagster_dbt import DbtCliResource\n")
    assert _private_dagster_modules(bad) == ["dagster._core.errors", "dagster_dbt._internal"]


def _lib_import_graph(root: Path) -> dict[str, set[str]]:
    """module -> the ``orchestration.lib`` modules it imports anywhere in the file (function-level imports too:
    they hide a circle from Python's import system, not from a reader)."""
    lib = root / "orchestration" / "lib"
    modules = {".".join(p.relative_to(root).with_suffix("").parts).removesuffix(".__init__"): p
               for p in lib.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                # ``from pkg import submodule`` names the submodule
                found |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                          for a in node.names}
        graph[name] = {m for m in found if m in modules and m != name}
    return graph


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_domain_logic_has_no_import_circle():
    circles = _circles(_lib_import_graph(ROOT))
    assert not circles, ("modules of orchestration/lib import each other in a circle (counting imports inside "
                         "functions): move what both need below both, or choose at the caller. " + str(circles))


def test_the_circle_guard_sees_a_circle_through_a_function_level_import(tmp_path):
    lib = tmp_path / "orchestration" / "lib"
    (lib / "pkg").mkdir(parents=True)
    (lib / "a.py").write_text("from orchestration.lib.pkg import b\n")
    (lib / "pkg" / "__init__.py").write_text("")
    (lib / "pkg" / "b.py").write_text("def f():\n    from orchestration.lib.c import x\n")
    (lib / "c.py").write_text("import orchestration.lib.a\nx = 1\n")
    assert _circles(_lib_import_graph(tmp_path)) == [["orchestration.lib.a", "orchestration.lib.c",
                                                      "orchestration.lib.pkg.b"]]


def test_the_guards_see_a_product_file_that_imports_tests(tmp_path):
    # the guard above must be able to fail: both import forms are caught
    bad = tmp_path / "bad.py"
    bad.write_text("import tests.support.x\nfrom tests.conftest import y\nfrom .tests import z\n")
    assert _imports(bad) >= {"tests.support.x", "tests.conftest"} and ".tests" not in _imports(bad)
    assert TEST_SUPPORT_NAMES.match("warehouse_fixture.py") and TEST_SUPPORT_NAMES.match("testdata.py")
    assert not TEST_SUPPORT_NAMES.match("contracts.py")


def _named_paths(doc: Path) -> list[str]:
    """Repository paths a page names in backticks (a file with an extension, or a folder ending in /) and the
    pages it links to."""
    text = doc.read_text(encoding="utf-8")
    out = []
    for token in re.findall(r"`([^`\s]+)`", text):
        path = token.split("::")[0].rstrip(".,;:)")
        if path.startswith(TOP) and not re.search(r"[<>*{}$\[\]|]", path) and \
                (path.endswith("/") or re.search(r"\.(py|md|yml|yaml|sql|csv|toml|json|sh)$", path)):
            out.append(path)
    for link in re.findall(r"\]\(([^)#\s]+\.md)(?:#[^)]*)?\)", text):
        if "://" not in link:
            out.append(str((doc.parent / link).resolve().relative_to(ROOT)))
    return out


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_docs_name_only_files_that_exist(doc):
    missing = [p for p in _named_paths(doc) if not (ROOT / p).exists()]
    assert not missing, f"{doc.relative_to(ROOT)} names files that do not exist (renamed? update the page): {missing}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_docs_point_at_nothing_outside_the_repository(doc):
    text = doc.read_text(encoding="utf-8")
    outside = [m.group(0) for m in re.finditer(r"\.\./[A-Za-z_][\w./-]*|\bDESIGN\.md\b|outside the repo\w*", text)]
    assert not outside, f"{doc.relative_to(ROOT)} points outside the repository: {outside} (copy what it needs into docs/)"


def test_the_three_yaml_loaders_name_each_problem_by_the_files_own_words(tmp_path):
    """Contracts, projects and ethics records share one validation (orchestration/lib/validation.py): every problem
    is collected, a list item is named by its id/name, an absent key is "missing", a placeholder is refused."""
    from ml.ethics import load_record, record_path
    from orchestration.lib.contracts import FEEDS_DIR, validate_contract_data
    from orchestration.lib.governance.projects import PROJECTS_DIR, validate_project_data

    contract = yaml.safe_load((FEEDS_DIR / "police.yml").read_text())
    feed = next(f for f in contract["feeds"] if f["id"] == "street_crimes")
    del feed["description"]
    feed["columns"][0]["type"] = "text"
    _, problems = validate_contract_data(contract, "police.yml")
    found = {where: what for where, what, _ in problems}
    assert found.get("police.yml: feeds[street_crimes].description") == "missing", problems
    assert f"police.yml: feeds[street_crimes].columns[{feed['columns'][0]['name']}].type" in found, problems
    assert all(fix for _, _, fix in problems)

    project = yaml.safe_load((PROJECTS_DIR / "PRJ-2025-HHRISK.yml").read_text())
    del project["project"]["outcome"]["measure"]
    project["project"]["problem"]["statement"] = "n/a"
    need = project["project"]["data"]["feeds"][0]
    need["columns"] = []
    found = {w: what for w, what, _ in validate_project_data(copy.deepcopy(project), "PRJ-X.yml").problems}
    assert found.get("PRJ-X.yml: project.outcome.measure") == "missing", found
    assert "placeholder" in found.get("PRJ-X.yml: project.problem.statement", ""), found
    assert f"PRJ-X.yml: project.data.feeds[{need['feed']}].columns" in found, found

    record = yaml.safe_load(record_path("household_risk").read_text())
    del record["purpose"]["statement"]
    record["human_oversight"] = "-"
    path = tmp_path / "ethics.yml"
    path.write_text(yaml.safe_dump(record))
    problems = load_record(path).problems
    assert "purpose.statement: missing" in problems and any(
        p.startswith("human_oversight:") and "placeholder" in p for p in problems), problems


def _functions_calling_get_settings_bare(path: Path) -> set[str]:
    """Functions in ``path`` that call ``get_settings()`` with no home: they resolve settings from the environment."""
    found = set()
    for fn in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            for node in ast.walk(fn):
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name | ast.Attribute)
                        and getattr(node.func, "id", getattr(node.func, "attr", None)) == "get_settings"
                        and not any(k.arg == "home" for k in node.keywords) and not node.args):
                    found.add(fn.name)
    return found


def test_lib_functions_take_settings_from_their_caller():
    """A lib function that falls back to ``get_settings()`` acts on the environment's home when a caller forgets
    to pass one; callers have the settings (a Dagster run from ``placelink_settings``, a command from the top of
    its entry point) and pass them."""
    found = {(str(p.relative_to(ROOT)), name) for p in sorted((ROOT / "orchestration" / "lib").rglob("*.py"))
             for name in _functions_calling_get_settings_bare(p)}
    assert found == set(), "take `settings: Settings` from the caller instead"


def test_the_settings_guard_sees_a_fallback(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f(settings=None):\n    settings = settings or get_settings()\n"
                   "def g(home):\n    return config.get_settings(home=home)\n")
    assert _functions_calling_get_settings_bare(bad) == {"f"}
