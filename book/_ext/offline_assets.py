"""Sphinx extension: where the scripts of the book's pages come from, and which page loads which.

* plotly.js is copied from the installed plotly package (the version that made the figures) and
  loaded only on pages that draw a plotly figure, before require.js, so `window.Plotly` exists when
  each figure's inline script runs (after require.js, plotly.js would register itself as an
  anonymous AMD module instead).
* require.js, the ipywidgets HTML manager and MathJax come from book/_vendor when `make vendor`
  (npm) has fetched them there: the built pages then need no network. Without book/_vendor (a
  fresh clone, `pip install -r requirements.txt`, `jupyter-book build book/`) they come from their
  CDN, at the versions `make vendor` fetches, and the build says in one line that its pages need a
  network to show maths and widgets.
* The HTML manager looks for its icon fonts under the module path
  "@jupyter-widgets/html-manager/dist/", resolved by require.js against the page's folder, where
  nothing is. A require.js `paths` entry, set on the pages with widgets only, points that path at
  the folder that holds them (the vendored copy, or the CDN).
* A favicon, so that browsers do not ask the server for a /favicon.ico it does not have.

Files land in _build/html/_static/vendor/. They are copied here rather than listed in
html_static_path because Jupyter Book loads every .js file it finds in a static folder on every page.
"""
import json
import shutil
from pathlib import Path

from sphinx.errors import ExtensionError
from sphinx.util import logging

logger = logging.getLogger(__name__)

CDN = "https://cdn.jsdelivr.net/npm/"
# Each file under book/_vendor and the same file on the CDN: the Makefile's NPM_PACKAGES versions
# (tests/book/test_cdn.py checks that they agree).
VENDORED = {
    "require.js": CDN + "requirejs@2.3.8/require.js",
    "html-manager/embed-amd.js": CDN + "@jupyter-widgets/html-manager@1.0.15/dist/embed-amd.js",
    "mathjax/tex-chtml.js": CDN + "mathjax@3.2.2/es5/tex-chtml.js",
}
WIDGET_MODULES = "@jupyter-widgets/html-manager/dist"   # where embed-amd.js's modules say they live
FAVICON = Path(__file__).with_name("favicon.svg")
NEEDS_NETWORK = ("book/_vendor is missing (`make vendor` fetches it with npm): the pages load require.js, "
                 "the widget manager and MathJax from cdn.jsdelivr.net, so they need a network to show "
                 "maths and widgets")

# The ipywidgets HTML manager typesets widget labels with MathJax 2's API
# (MathJax.Hub.Queue); the book loads MathJax 3. Map the one call it makes onto MathJax 3.
MATHJAX2_SHIM = """document.addEventListener("DOMContentLoaded", function () {
  var MJ = window.MathJax;
  if (!MJ || MJ.Hub || !MJ.startup) { return; }
  MJ.Hub = {Queue: function () {
    for (var i = 0; i < arguments.length; i++) {
      var job = arguments[i];
      if (Array.isArray(job) && job[0] === "Typeset" && job[2]) {
        MJ.startup.promise.then(function (el) { return function () { return MJ.typesetPromise([el]); }; }(job[2]))
          .catch(function (e) { console.warn("MathJax typeset failed", e); });
      }
    }
  }};
});"""


def script_sources(vendor: Path) -> dict:
    """Where the pages get require.js, the widget manager (and its fonts) and MathJax: the files
    under `vendor` (book/_vendor) if all are there, else the CDN. -> {"offline": bool, "mathjax_path",
    "nb_ipywidgets_js" (myst-nb's setting: script -> attributes), "widget_fonts" (a folder: under
    _static, or a URL)}."""
    if all((Path(vendor) / name).is_file() for name in VENDORED):
        return {"offline": True, "mathjax_path": "vendor/mathjax/tex-chtml.js",
                "nb_ipywidgets_js": {"vendor/require.js": {}, "vendor/html-manager/embed-amd.js": {}},
                "widget_fonts": "_static/vendor/html-manager"}
    manager = VENDORED["html-manager/embed-amd.js"]
    return {"offline": False, "mathjax_path": VENDORED["mathjax/tex-chtml.js"],
            "nb_ipywidgets_js": {VENDORED["require.js"]: {},
                                 manager: {"data-jupyter-widgets-cdn": CDN, "crossorigin": "anonymous"}},
            "widget_fonts": manager.rsplit("/", 1)[0]}


def _plotly_js() -> Path:
    import plotly
    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def _vendor(app) -> Path:
    return Path(app.srcdir) / "_vendor"


def choose_sources(app, config):
    """config-inited: point MathJax and myst-nb's widget scripts at the vendored files or the CDN."""
    sources = script_sources(_vendor(app))
    config.mathjax_path = sources["mathjax_path"]
    config.nb_ipywidgets_js = sources["nb_ipywidgets_js"]
    if not config.html_favicon:
        config.html_favicon = str(FAVICON)
    app.offline_assets = sources
    if not sources["offline"]:
        logger.info(NEEDS_NETWORK)
    if not _plotly_js().is_file():
        raise ExtensionError(f"plotly.min.js not found at {_plotly_js()}; reinstall plotly")


def copy_assets(app, exception):
    if exception is not None or app.builder.format != "html":
        return
    dest = Path(app.outdir) / "_static" / "vendor"
    if app.offline_assets["offline"]:
        shutil.copytree(_vendor(app), dest, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".fetched"))
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_plotly_js(), dest / "plotly.min.js")


def page_scripts(app, pagename, templatename, context, doctree):
    """Per page (after myst-nb has added the widget scripts of pages with widgets): plotly.js where a
    figure is drawn; where widgets are, the fonts' folder for require.js and the MathJax 2 shim."""
    if app.builder.format != "html":
        return
    if "plotly-graph-div" in context.get("body", ""):
        app.add_js_file("vendor/plotly.min.js", priority=200)   # < 500, myst-nb's require.js
    files = context.get("script_files", [])
    widgets = any(_name(js).endswith("embed-amd.js") for js in files)
    if widgets:
        fonts = app.offline_assets["widget_fonts"]
        if "://" not in fonts:
            fonts = context["pathto"](fonts, 1)
        # read by require.js as its configuration when it loads (so: before it, priority < 500)
        app.add_js_file(None, body=f"var require = {json.dumps({'paths': {WIDGET_MODULES: fonts}})};", priority=490)
        app.add_js_file(None, body=MATHJAX2_SHIM, priority=210)
    elif not app.env.get_domain("math").data["has_equations"].get(pagename):
        # Sphinx loads MathJax where a page *or a page in its toctree* has maths: the book's root
        # page lists every chapter, and has no maths of its own
        files[:] = [js for js in files if not _name(js).endswith(app.config.mathjax_path)]


def _name(js) -> str:
    return str(getattr(js, "filename", js) or "")


def dedupe_scripts(app, pagename, templatename, context, doctree):
    """Drop repeated <script> entries (sphinx-thebe registers its inline config once per
    read phase, and a page that declares `const THEBE_JS_URL` twice throws a SyntaxError)."""
    seen, kept = set(), []
    for js in context.get("script_files", []):
        name = js.filename if hasattr(js, "filename") else str(js)
        key = (name or "", repr(sorted(getattr(js, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            kept.append(js)
    if "script_files" in context:
        context["script_files"][:] = kept


def setup(app):
    app.connect("config-inited", choose_sources)
    app.connect("build-finished", copy_assets)
    app.connect("html-page-context", dedupe_scripts, priority=100)  # early: the event stops at the first handler that returns a template
    app.connect("html-page-context", page_scripts, priority=600)    # after myst-nb's (500), which adds the widget scripts
    return {"parallel_read_safe": True, "parallel_write_safe": True}
