"""The book: its configuration, its stored notebooks, and its built pages in a real browser.

The browser check opens every chapter of the built book in headless Chromium
with no network (only 127.0.0.1 resolves) and checks that each plotly figure
drew its SVG and each ipywidget drew its view. It needs a built book: set
NATTOOLS_BOOK_HTML to its folder (`make test` builds it first), or the test
builds it with the same strict command as `make book` (cached runs are quick).
Set NATTOOLS_SCREENSHOTS to a folder to also save a full-page PNG per chapter.

Chromium missing: the browser tests fail under CI (CI=true) and are skipped elsewhere.
"""
import functools
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
BOOK = ROOT / "book"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run",
                  "--disable-default-apps", "--disable-extensions", "--mute-audio",
                  "--hide-scrollbars", "--enable-unsafe-swiftshader",
                  # no network: every host name fails to resolve except the local server's
                  "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"]


def toc_files() -> list:
    toc = yaml.safe_load((BOOK / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [c["file"] for c in part.get("chapters", [])]
    files += [c["file"] for c in toc.get("chapters", [])]
    return files


def chapter_notebooks() -> list:
    return [f for f in toc_files() if (BOOK / f"{f}.ipynb").is_file()]


# ---------------------------------------------------------------------------
# Configuration and sources (no build needed)
# ---------------------------------------------------------------------------
def test_config_is_strict_and_offline():
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    ex = cfg["execute"]
    assert ex["execute_notebooks"] == "cache"
    assert ex["raise_on_error"] is True and ex["allow_errors"] is False
    assert ex["stderr_output"] in ("warn", "error", "severe")
    assert cfg["repository"]["url"].startswith("https://")
    assert cfg["launch_buttons"]["binderhub_url"] and cfg["launch_buttons"]["colab_url"]
    sph = cfg["sphinx"]["config"]
    # every script the pages load is served by the book itself
    assert not sph["mathjax_path"].startswith(("http", "//"))
    assert all(not p.startswith(("http", "//")) for p in sph["nb_ipywidgets_js"])
    # the build command is strict: warnings are errors
    make = (ROOT / "Makefile").read_text()
    assert re.search(r"jupyter-book build -W .*book/", make)
    assert (ROOT / "runtime.txt").is_file() and "jupyter-book" in (ROOT / "requirements.txt").read_text()


def test_toc_lists_only_existing_files():
    for f in toc_files():
        assert (BOOK / f"{f}.ipynb").is_file() or (BOOK / f"{f}.md").is_file(), f"{f} in _toc.yml does not exist"


@pytest.mark.parametrize("name", chapter_notebooks())
def test_notebooks_are_stored_without_outputs(name):
    nb = json.loads((BOOK / f"{name}.ipynb").read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [] and cell.get("execution_count") is None, \
                f"{name}.ipynb is stored with outputs: clear them (jupyter nbconvert --clear-output --inplace)"
    code = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    assert "viz.setup(" in code, f"{name}.ipynb should start with viz.setup() (seeds, threads)"
    if "load_images(" in code or "data.load(" in code:
        assert "default_dataset()" in code, f"{name}.ipynb loads images: it should say which dataset it got"
    md = " ".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    assert "What you will learn" in md and "Things to try" in md


def test_viz_sets_a_renderer_that_emits_html():
    import plotly.graph_objects as go
    import plotly.io as pio
    import nattools.viz  # noqa: F401  (importing it sets the renderer)
    bundle = pio.renderers._build_mime_bundle(go.Figure(go.Scatter(x=[0, 1], y=[1, 0])).to_dict())
    assert "text/html" in bundle and "application/vnd.plotly.v1+json" in bundle
    assert "cdn.plot.ly" not in bundle["text/html"] and "<script src" not in bundle["text/html"]


# ---------------------------------------------------------------------------
# The built book in a browser
# ---------------------------------------------------------------------------
def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        if shutil.which(name):
            return shutil.which(name)
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail("Chromium is not installed, and CI must run the browser test: `make chromium`")
    pytest.skip("Chromium is not installed (`make chromium` installs it); skipped outside CI")


@pytest.fixture(scope="module")
def chromium():
    return _chromium()


@pytest.fixture(scope="module")
def book_html():
    env = os.environ.get("NATTOOLS_BOOK_HTML")
    if env:
        html = Path(env)
        if not html.is_absolute():
            html = ROOT / html
    else:
        jb = Path(sys.executable).parent / "jupyter-book"
        subprocess.run([str(jb), "build", "-W", "-n", "--keep-going", "book/"], cwd=ROOT, check=True)
        html = ROOT / "_build" / "html"
    assert (html / "index.html").is_file(), f"no built book at {html}"
    return html


@pytest.fixture(scope="module")
def server(book_html):
    handler = functools.partial(_QuietHandler, directory=str(book_html))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def run_chromium(chromium, url, *args, timeout=180):
    with tempfile.TemporaryDirectory() as profile:
        cmd = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--enable-logging=stderr",
               "--v=0", "--virtual-time-budget=30000", "--window-size=1280,1600", *args, url]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


class DomScan(HTMLParser):
    """Finds plotly figures (div.plotly-graph-div) and whether each holds an svg.main-svg,
    and widget views (div.widget-subarea, made by the widget manager) and whether each holds a view."""
    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
            "track", "wbr"}

    def __init__(self):
        super().__init__()
        self.stack, self.figures, self.widgets = [], {}, []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        for kind, key in self.stack:
            if kind == "figure" and tag == "svg" and "main-svg" in classes:
                self.figures[key] = True
            if kind == "widget" and any(c.startswith(("widget-", "jupyter-widgets", "lm-Widget")) for c in classes):
                self.widgets[key] = True
        entry = (None, None)
        if tag == "div" and "plotly-graph-div" in classes:
            key = a.get("id") or f"figure-{len(self.figures)}"
            self.figures.setdefault(key, False)
            entry = ("figure", key)
        elif tag == "div" and "widget-subarea" in classes:
            self.widgets.append(False)
            entry = ("widget", len(self.widgets) - 1)
        if tag not in self.VOID:
            self.stack.append(entry)

    def handle_startendtag(self, tag, attrs):
        if tag not in self.VOID:
            self.handle_starttag(tag, attrs)
            self.handle_endtag(tag)
        else:
            self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag):
        if tag not in self.VOID and self.stack:
            self.stack.pop()


def static_counts(page: Path):
    html = page.read_text()
    figures = len(re.findall(r'class="plotly-graph-div', html))
    widgets = len(re.findall(r'type="application/vnd.jupyter.widget-view\+json"', html))
    return html, figures, widgets


def test_book_has_figures_and_widgets(book_html):
    counts = [static_counts(book_html / f"{name}.html")[1:] for name in chapter_notebooks()]
    assert sum(f for f, _ in counts) > 0 and sum(w for _, w in counts) > 0


@pytest.mark.parametrize("name", chapter_notebooks())
def test_page_loads_nothing_from_the_network(book_html, name):
    html, _, _ = static_counts(book_html / f"{name}.html")
    external = re.findall(r'<(?:script[^>]+src|link[^>]+rel="stylesheet"[^>]+href)="((?:https?:)?//[^"]+)"', html)
    assert not external, f"{name}.html loads {external}"


@pytest.mark.parametrize("name", chapter_notebooks())
def test_chapter_draws_every_figure_and_widget_offline(chromium, server, book_html, name):
    html, n_figures, n_widgets = static_counts(book_html / f"{name}.html")
    res = run_chromium(chromium, f"{server}/{name}.html", "--dump-dom")
    assert res.returncode == 0, res.stderr[-2000:]
    scan = DomScan()
    scan.feed(res.stdout)
    drawn = sum(scan.figures.values())
    assert len(scan.figures) == n_figures, f"{name}: {len(scan.figures)} plotly divs in the DOM, {n_figures} in the page"
    assert drawn == n_figures, f"{name}: only {drawn}/{n_figures} plotly figures drew their SVG offline: " \
                               f"{[k for k, v in scan.figures.items() if not v]}"
    assert len(scan.widgets) == n_widgets and all(scan.widgets), \
        f"{name}: {sum(scan.widgets)}/{n_widgets} widget views drawn offline"
    assert "Error displaying widget" not in res.stdout
    errors = [line for line in res.stderr.splitlines() if "CONSOLE" in line and "Uncaught" in line]
    assert not errors, f"{name}: JavaScript errors: {errors[:5]}"
    assert "<mjx-container" in res.stdout or "$" not in html, f"{name}: MathJax did not typeset offline"
    shots = os.environ.get("NATTOOLS_SCREENSHOTS")
    if shots:
        Path(shots).mkdir(parents=True, exist_ok=True)
        run_chromium(chromium, f"{server}/{name}.html", f"--screenshot={Path(shots).resolve() / name}.png",
                     "--window-size=1280,9000")
