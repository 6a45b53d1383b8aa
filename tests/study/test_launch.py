"""nattools.study.launch: every chapter's first cell installs nattools and fetches data/ where they are
missing (Colab), from the repository set once in _config.yml, and does nothing in this checkout."""
import contextlib
import io
import json
import os
import subprocess
import tarfile
import urllib.request
from pathlib import Path

import pytest
import yaml

from nattools.study import launch

ROOT = Path(__file__).resolve().parents[2]


def chapters():
    toc = yaml.safe_load((ROOT / "book" / "_toc.yml").read_text())
    files = [c["file"] for part in toc["parts"] for c in part["chapters"]]
    return [f for f in files if (ROOT / "book" / f"{f}.ipynb").is_file()]


def test_repository_is_read_from_the_config():
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]
    assert launch.repository(ROOT / "_config.yml") == (cfg["url"], cfg.get("branch", "main"))
    assert launch.config_path(ROOT / "book") == ROOT / "_config.yml"      # found from book/ too


@pytest.mark.parametrize("name", chapters())
def test_every_chapter_starts_with_the_launch_cell(name):
    url, branch = launch.repository(ROOT / "_config.yml")
    nb = json.loads((ROOT / "book" / f"{name}.ipynb").read_text())
    cell = next(c for c in nb["cells"] if c["cell_type"] == "code")
    assert "".join(cell["source"]) == launch.first_cell(url, branch), \
        f"{name}: run `python -m nattools.study.launch` to rewrite its launch cell from _config.yml"
    assert url in "".join(cell["source"]) and "hide-input" in cell["metadata"].get("tags", [])
    assert len(cell["source"]) <= 20


def test_the_launch_cell_is_a_no_op_here(monkeypatch):
    """Run the cell as a chapter does (in book/): nattools and data/ are present, so it installs
    nothing, downloads nothing and prints nothing."""
    def forbidden(*args, **kwargs):
        raise AssertionError(f"the launch cell tried to install or download: {args[:1]}")
    monkeypatch.setattr(subprocess, "run", forbidden)
    monkeypatch.setattr(urllib.request, "urlopen", forbidden)
    monkeypatch.chdir(ROOT / "book")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        namespace = {}
        exec(launch.first_cell(*launch.repository()), namespace)   # noqa: S102 (our own cell)
    assert out.getvalue() == ""
    assert namespace["REPOSITORY"] == launch.repository()[0]


def _archive(files: dict) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_fetch_data_unpacks_only_data_where_it_is_missing(monkeypatch, tmp_path):
    archive = _archive({"nattools-main/data/results/r.json": "{}", "nattools-main/data/checkpoints/c.pt": "x",
                        "nattools-main/nattools/evil.py": "raise", "nattools-main/README.md": "#"})
    asked = []

    class Response(io.BytesIO):
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    def urlopen(url, timeout=None):
        asked.append(url)
        return Response(archive)
    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    monkeypatch.setattr(launch, "data_present", lambda start=None: False)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        launch.fetch_data("https://github.com/o/r", "main", dest=tmp_path)
    assert asked == ["https://github.com/o/r/archive/refs/heads/main.tar.gz"]
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()) == \
        [os.path.join("data", "checkpoints", "c.pt"), os.path.join("data", "results", "r.json")]
    assert "fetched 2 files" in out.getvalue()


def test_sync_chapters_rewrites_a_stale_cell(tmp_path):
    book = tmp_path / "book"
    book.mkdir()
    (tmp_path / "_config.yml").write_text("repository:\n  url: https://github.com/a/b\n  branch: dev\n")
    nb = {"cells": [{"cell_type": "markdown", "id": "t", "metadata": {}, "source": ["# 1. T"]},
                    {"cell_type": "code", "id": "c", "metadata": {}, "outputs": [], "execution_count": None,
                     "source": ["print(1)"]}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    (book / "01_t.ipynb").write_text(json.dumps(nb))
    assert launch.sync_chapters(book, tmp_path / "_config.yml") == [book / "01_t.ipynb"]
    cells = json.loads((book / "01_t.ipynb").read_text())["cells"]
    assert [c["cell_type"] for c in cells] == ["markdown", "code", "code"]
    assert '"https://github.com/a/b", "dev"' in "".join(cells[1]["source"])
    assert launch.sync_chapters(book, tmp_path / "_config.yml") == []             # in step: nothing to do
