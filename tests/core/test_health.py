"""`health_report`: where it looks (the config's paths, any layout), each complexity row once, and coverage figures
from one measurement that say which tree they are of (issue 11)."""

from __future__ import annotations

from pathlib import Path

from mcp_servers.core import receipts
from mcp_servers.core.health import health_report
from mcp_servers.core.workspace import Workspace

from ..conftest import make_repo

SHAPES = '''class Shape:
    def area(self, kind):
        if kind == "a":
            return 1
        if kind == "b":
            return 2
        return 3

    class Inner:
        def edge(self, n):
            return 1 if n else 0


def helper(x):
    def inner(y):
        return y if y else x

    return inner
'''

FLAT = '[policy]\nallowed_paths = ["mypkg/**", "tests/**"]\n[gate.coverage]\nsource = ["mypkg"]\n'


def test_health_lists_each_complexity_row_once(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", files={"src/app/shapes.py": SHAPES})
    report = health_report(Workspace.open(repo.root))
    rows = [(h.path, h.function, h.line) for h in report.complexity_hotspots]
    assert len(rows) == len(set(rows)), rows
    shapes = {(f, line) for p, f, line in rows if p == "src/app/shapes.py"}
    assert shapes == {("Shape.area", 2), ("Inner.edge", 10), ("helper", 14), ("inner", 15)}


def test_health_takes_its_paths_from_the_config_on_a_flat_layout(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", config=FLAT, files={"mypkg/__init__.py": "", "mypkg/shapes.py": SHAPES,
                                                         "scripts/tool.py": "X = 1\n"})  # fmt: skip
    report = health_report(Workspace.open(repo.root))
    assert report.paths == ["mypkg", "tests"]  # not an assumed src/, and nothing outside the allowed paths
    assert report.python_files == 3 and any(h.path == "mypkg/shapes.py" for h in report.complexity_hotspots)
    assert not any("gate.coverage.source" in n for n in report.notes)


def test_health_says_when_the_coverage_source_does_not_exist(tmp_path: Path) -> None:
    # the layout the issue met: a flat package with the src/ defaults
    repo = make_repo(tmp_path / "r", config='[policy]\nallowed_paths = ["src/**", "mypkg/**"]\n',
                     files={"mypkg/core.py": SHAPES})  # fmt: skip
    (repo.root / "src" / "app" / "calc.py").unlink()
    (repo.root / "src" / "app" / "__init__.py").unlink()
    (repo.root / "src" / "app").rmdir()
    (repo.root / "src").rmdir()
    report = health_report(Workspace.open(repo.root))
    assert report.paths == ["mypkg"] and report.python_files == 1
    assert any("`src` in gate.coverage.source does not exist here" in n and "overnight.toml" in n
               for n in report.notes), report.notes  # fmt: skip


def test_health_coverage_figures_are_one_measurement_of_a_named_tree(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r")
    ws = Workspace.open(repo.root)
    head_tree = repo.git("rev-parse", "HEAD^{tree}")
    files = {
        "src/app/calc.py": {"statements": 10, "covered": 9, "percent": 90.0},
        "src/app/__init__.py": {"statements": 0, "covered": 0, "percent": 100.0},
        "tests/test_calc.py": {"statements": 10, "covered": 10, "percent": 100.0},
        "elsewhere/gone.py": {"statements": 30, "covered": 0, "percent": 0.0},  # not under the paths analysed
    }
    with ws.db() as conn:  # HEAD's tree first, then another (newer) measurement whose total counts branches too
        receipts.save_coverage(conn, head_tree, 61.5, files, "line/py3.11")
        receipts.save_coverage(conn, "f" * 40, 12.0, {"src/app/calc.py": {"statements": 10, "covered": 1}}, "branch")
    report = health_report(ws)
    modules = {m.module: (m.percent, m.statements) for m in report.coverage_by_module}
    assert modules == {"src/app": (90.0, 10), "tests": (100.0, 10)}
    assert report.coverage_total == 95.0  # (9 + 10) / (10 + 10): the same lines the modules add up
    assert report.coverage_tree == head_tree
    assert report.coverage_of is not None and report.coverage_of.startswith(f"HEAD's tree {head_tree[:12]}, measured ")
    repo.write("src/app/calc.py", "X = 1\n")
    repo.commit("another HEAD, not measured")
    newest = health_report(ws)
    assert newest.coverage_tree == "f" * 40 and newest.coverage_total == 10.0
    assert newest.coverage_of is not None and "the newest measured tree (not HEAD's)" in newest.coverage_of


def test_health_never_reads_a_file_a_link_points_to_outside_the_repository(tmp_path: Path) -> None:
    secret = tmp_path / "id_rsa"
    secret.write_text("def private_key_of_the_person():\n    return 'not yours'\n")
    repo = make_repo(tmp_path / "r")
    (repo.root / "tests" / "leak.py").symlink_to(secret)
    (repo.root / "tests" / "inside.py").symlink_to(repo.root / "src" / "app" / "calc.py")
    for paths in (None, ["tests"]):
        report = health_report(Workspace.open(repo.root), paths)
        assert "private_key_of_the_person" not in report.model_dump_json()
        assert not any(h.path == "tests/leak.py" for h in report.complexity_hotspots)
        assert any(h.path == "tests/inside.py" for h in report.complexity_hotspots)
