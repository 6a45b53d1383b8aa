"""The book's two builds: offline (book/_vendor, `make book`) and, on a fresh clone without it,
`jupyter-book build book/` with require.js, the widget manager and MathJax from their CDN.

book/_ext/offline_assets.py decides. The unit tests call its configuration function; the build
tests run Sphinx with the extension on a two-page project (a page with maths, a widget and a plotly
figure, a page with none) in a few seconds, once without book/_vendor and once with a stand-in for it.
"""
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "book" / "_ext"))
import offline_assets  # noqa: E402

NPM_NAMES = {"require.js": "requirejs", "html-manager/embed-amd.js": "@jupyter-widgets/html-manager",
             "mathjax/tex-chtml.js": "mathjax"}


def npm_packages() -> dict:
    """{package: version} from the Makefile's NPM_PACKAGES (what `make vendor` fetches)."""
    line = re.search(r"^NPM_PACKAGES\s*:=\s*(.+)$", (ROOT / "Makefile").read_text(), re.M).group(1)
    return dict(spec.rsplit("@", 1) for spec in line.split())


def test_without_vendor_the_pages_use_the_cdn_at_the_makefile_versions(tmp_path):
    s = offline_assets.script_sources(tmp_path / "no_vendor")
    assert s["offline"] is False
    packages = npm_packages()
    assert set(packages) == set(NPM_NAMES.values())
    urls = [s["mathjax_path"], *s["nb_ipywidgets_js"], s["widget_fonts"]]
    assert all(u.startswith("https://cdn.jsdelivr.net/npm/") for u in urls)
    for file, package in NPM_NAMES.items():
        url = offline_assets.VENDORED[file]
        assert f"/{package}@{packages[package]}/" in url and url.endswith(Path(file).name), url
    assert s["mathjax_path"] == offline_assets.VENDORED["mathjax/tex-chtml.js"]
    assert s["widget_fonts"].endswith("/@jupyter-widgets/html-manager@" + packages["@jupyter-widgets/html-manager"]
                                      + "/dist")


def test_with_vendor_the_pages_use_their_own_files_as_the_config_says(tmp_path):
    for name in offline_assets.VENDORED:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("// vendored")
    s = offline_assets.script_sources(tmp_path)
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())["sphinx"]["config"]
    assert s["offline"] is True
    assert s["mathjax_path"] == cfg["mathjax_path"] and list(s["nb_ipywidgets_js"]) == list(cfg["nb_ipywidgets_js"])
    (tmp_path / "require.js").unlink()                          # one file missing: the CDN for all three
    assert offline_assets.script_sources(tmp_path)["offline"] is False


NOTEBOOK = {
    "cells": [
        {"cell_type": "markdown", "metadata": {}, "source": ["# Widgets\n", "\n", "Maths: $x^2$.\n"]},
        {"cell_type": "code", "execution_count": 1, "metadata": {}, "source": ["slider"], "outputs": [
            {"output_type": "display_data", "metadata": {}, "data": {
                "text/plain": ["IntSlider(value=1)"],
                "application/vnd.jupyter.widget-view+json": {"model_id": "m1", "version_major": 2,
                                                             "version_minor": 0}}},
            {"output_type": "display_data", "metadata": {}, "data": {
                "text/html": ['<div id="f1" class="plotly-graph-div"></div>']}}]}],
    "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                 "widgets": {"application/vnd.jupyter.widget-state+json": {
                     "version_major": 2, "version_minor": 0, "state": {"m1": {
                         "model_name": "IntSliderModel", "model_module": "@jupyter-widgets/controls",
                         "model_module_version": "2.0.0", "state": {"value": 1}}}}}},
    "nbformat": 4, "nbformat_minor": 5}


def build(tmp_path, vendor: bool):
    """Sphinx with the book's extension on a two-page project -> (output folder, build log)."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "conf.py").write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(ROOT / "book" / "_ext")!r})
        extensions = ["myst_nb", "offline_assets"]
        nb_execution_mode = "off"
        myst_enable_extensions = ["dollarmath"]
        exclude_patterns = ["_vendor/**"]
        suppress_warnings = ["mystnb.unknown_mime_type"]
        """))
    (src / "index.md").write_text("# Home\n\nNo maths, no widgets, no figures.\n\n```{toctree}\nwidgets\n```\n")
    (src / "widgets.ipynb").write_text(json.dumps(NOTEBOOK))
    if vendor:
        for name in offline_assets.VENDORED:
            (src / "_vendor" / name).parent.mkdir(parents=True, exist_ok=True)
            (src / "_vendor" / name).write_text("// vendored")
    out = tmp_path / "html"
    res = subprocess.run([sys.executable, "-m", "sphinx", "-b", "html", "-W", str(src), str(out)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    return out, res.stdout + res.stderr


def scripts(page: Path) -> list:
    return re.findall(r'<script[^>]*src="([^"]+)"', page.read_text())


def test_a_build_without_vendor_loads_the_cdn_and_says_so_once(tmp_path):
    out, log = build(tmp_path, vendor=False)
    assert log.count(offline_assets.NEEDS_NETWORK) == 1
    page, home = scripts(out / "widgets.html"), scripts(out / "index.html")
    for url in offline_assets.VENDORED.values():
        assert url in page, f"{url} not loaded by the widget page"
    assert any(s.startswith("_static/vendor/plotly.min.js") for s in page)
    assert not any("plotly" in s or "require" in s or "mathjax" in s for s in home), home
    html = (out / "widgets.html").read_text()
    assert f'"@jupyter-widgets/html-manager/dist": "{offline_assets.VENDORED["html-manager/embed-amd.js"].rsplit("/", 1)[0]}"' in html
    assert (out / "_static" / "vendor" / "plotly.min.js").is_file()
    assert 'rel="icon"' in (out / "index.html").read_text()


def test_a_build_with_vendor_loads_its_own_files(tmp_path):
    out, log = build(tmp_path, vendor=True)
    assert offline_assets.NEEDS_NETWORK not in log
    page = scripts(out / "widgets.html")
    assert not [s for s in page if "://" in s], page
    for name in ("vendor/require.js", "vendor/html-manager/embed-amd.js", "vendor/mathjax/tex-chtml.js",
                 "vendor/plotly.min.js"):
        assert any(s.startswith("_static/" + name) for s in page), name
    assert '"@jupyter-widgets/html-manager/dist": "_static/vendor/html-manager"' in (out / "widgets.html").read_text()
    assert (out / "_static" / "vendor" / "html-manager" / "embed-amd.js").is_file()
    # priorities: plotly.js before require.js (else it registers as an AMD module), the paths before require.js
    html = (out / "widgets.html").read_text()
    assert html.index("plotly.min.js") < html.index("var require =") < html.index("vendor/require.js")
