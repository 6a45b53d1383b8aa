"""Sphinx extension: every script the book's pages run comes from the book itself.

* plotly.js is copied from the installed plotly package (the version that made
  the figures) and loaded on every page before require.js, so `window.Plotly`
  exists when each figure's inline script runs (after require.js, plotly.js
  would register itself as an anonymous AMD module instead);
* require.js, the ipywidgets HTML manager and MathJax are fetched once by
  `make vendor` (npm) into book/_vendor (git-ignored). A build without them stops
  with the fix instead of producing pages that need a CDN.

Both land in _build/html/_static/vendor/. They are copied here rather than
listed in html_static_path because Jupyter Book loads every .js file it finds
in a static folder on every page.
"""
import shutil
from pathlib import Path

from sphinx.errors import ExtensionError

NEEDED = ("require.js", "html-manager/embed-amd.js", "mathjax/tex-chtml.js")


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


def _plotly_js() -> Path:
    import plotly
    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def _vendor(app) -> Path:
    return Path(app.srcdir) / "_vendor"


def check_vendor(app):
    missing = [n for n in NEEDED if not (_vendor(app) / n).is_file()]
    if missing:
        raise ExtensionError(f"offline JavaScript missing under {_vendor(app)}: {', '.join(missing)}. "
                             f"Fetch it once with `make vendor` (npm).")
    if not _plotly_js().is_file():
        raise ExtensionError(f"plotly.min.js not found at {_plotly_js()}; reinstall plotly")


def copy_assets(app, exception):
    if exception is not None or app.builder.format != "html":
        return
    dest = Path(app.outdir) / "_static" / "vendor"
    shutil.copytree(_vendor(app), dest, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".fetched"))
    shutil.copyfile(_plotly_js(), dest / "plotly.min.js")


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
    # priority 200 < 500 (myst-nb's per-page require.js): plotly.js loads first.
    app.add_js_file("vendor/plotly.min.js", priority=200)
    app.add_js_file(None, body=MATHJAX2_SHIM, priority=210)
    app.connect("builder-inited", check_vendor)
    app.connect("build-finished", copy_assets)
    app.connect("html-page-context", dedupe_scripts, priority=100)  # early: the event stops at the first handler that returns a template
    return {"parallel_read_safe": True, "parallel_write_safe": True}
