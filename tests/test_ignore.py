"""``.dockerignore`` / ``.gitignore`` rules and what a source folder never contributes."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlflowlet._ignore import IgnoreRules, walk_source


def _tree(root: Path, *paths: str) -> None:
    for rel in paths:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(rel)


@pytest.mark.parametrize("lines, rel, is_dir, expected", [
    (["*.log"], "app.log", False, True),
    (["*.log"], "sub/app.log", False, False),          # docker: anchored at the root
    (["**/*.log"], "sub/deep/app.log", False, True),
    (["data"], "data/x.csv", False, True),              # a folder excludes its contents
    (["data", "!data/keep.csv"], "data/keep.csv", False, False),
    (["/secret.txt"], "secret.txt", False, True),
    (["build/"], "build/out.bin", False, True),
    (["a?c"], "abc", False, True),
    (["a?c"], "a/c", False, False),
    (["[ab].txt"], "b.txt", False, True),
    (["*", "!src"], "src/main.py", False, False),
    (["# comment", ""], "x", False, False),
])
def test_dockerignore_rules(lines, rel, is_dir, expected):
    assert IgnoreRules(lines, "docker").excluded(rel, is_dir) is expected


@pytest.mark.parametrize("lines, rel, is_dir, expected", [
    (["*.log"], "sub/app.log", False, True),            # git: no slash matches at any depth
    (["/top.log"], "sub/top.log", False, False),
    (["build/"], "build", True, True),
    (["build/"], "build", False, False),                # a trailing / matches folders only
    (["build/"], "src/build/x.o", False, True),
    (["doc/*.txt"], "doc/a.txt", False, True),
    (["doc/*.txt"], "doc/sub/a.txt", False, False),
    (["logs", "!logs/keep.log"], "logs/keep.log", False, True),  # no way back out of a folder
    (["*.csv", "!keep.csv"], "keep.csv", False, False),
    (["foo/**"], "foo/a/b", False, True),
    (["a/**/b"], "a/x/y/b", False, True),
])
def test_gitignore_rules(lines, rel, is_dir, expected):
    assert IgnoreRules(lines, "git").excluded(rel, is_dir) is expected


def test_never_copied_whatever_the_ignore_file_says(tmp_path):
    _tree(tmp_path, "train.py", "pkg/model.py", ".git/HEAD", ".venv/bin/python",
          "env/pyvenv.cfg", "env/lib/site.py", "mlflowlet.db", "mlflowlet.db-wal",
          "artifacts/run1/model.pkl", "mlflowlet-build/img/Dockerfile", "pkg/__pycache__/m.pyc",
          "notes/artifacts/keep.txt")
    (tmp_path / ".dockerignore").write_text("!.git\n!.venv\n!mlflowlet.db\n")
    files = [rel for rel, _ in walk_source(tmp_path)]
    assert files == [".dockerignore", "notes/artifacts/keep.txt", "pkg/model.py", "train.py"]


def test_dockerignore_wins_over_gitignore(tmp_path):
    _tree(tmp_path, "a.py", "b.csv", "c.log")
    (tmp_path / ".gitignore").write_text("*.csv\n")
    assert [r for r, _ in walk_source(tmp_path)] == [".gitignore", "a.py", "c.log"]
    (tmp_path / ".dockerignore").write_text("*.log\n.gitignore\n")
    assert [r for r, _ in walk_source(tmp_path)] == [".dockerignore", "a.py", "b.csv"]


def test_skip_leaves_out_given_paths(tmp_path):
    _tree(tmp_path, "a.py", "out/ctx/Dockerfile")
    assert [r for r, _ in walk_source(tmp_path, {tmp_path / "out" / "ctx"})] == ["a.py"]
