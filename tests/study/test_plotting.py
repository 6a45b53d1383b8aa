"""nattools.study.plotting: the page setup (by a call, not on import), budgets, pictures."""
import io
import subprocess
import sys

import plotly.graph_objects as go
import plotly.io as pio
import torch
from PIL import Image

from nattools.study import plotting


def test_importing_the_wing_sets_no_renderer():
    code = ("import plotly.io as pio; before = (pio.renderers.default, pio.templates.default); "
            "import nattools.study.plotting, nattools.study.runs, nattools.study.coverage; "
            "assert (pio.renderers.default, pio.templates.default) == before, before; "
            "assert 'nattools' not in pio.renderers")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_setup_sets_a_renderer_that_emits_html_without_plotly_js(monkeypatch):
    monkeypatch.setattr(pio.renderers, "default", pio.renderers.default)
    monkeypatch.setattr(pio.templates, "default", pio.templates.default)
    monkeypatch.setenv("NATTOOLS_THREADS", "1")
    threads = torch.get_num_threads()
    try:
        plotting.setup(seed=3)
        assert pio.renderers.default == "plotly_mimetype+nattools" and pio.templates.default == "plotly_white"
        a = torch.rand(1)
        plotting.seed_all(3)
        assert torch.equal(a, torch.rand(1))                               # setup seeded torch
        bundle = pio.renderers._build_mime_bundle(go.Figure(go.Scatter(x=[0, 1], y=[1, 0])).to_dict())
    finally:
        torch.set_num_threads(threads)
    assert "text/html" in bundle and "application/vnd.plotly.v1+json" in bundle
    assert "cdn.plot.ly" not in bundle["text/html"] and "<script src" not in bundle["text/html"]
    assert "nat-fig-" in bundle["text/html"]                                # deterministic div ids


def test_budget(monkeypatch):
    monkeypatch.setenv("NATTOOLS_BUDGET", "small")
    assert plotting.small_budget() and plotting.budget(100, 5) == 5
    monkeypatch.setenv("NATTOOLS_BUDGET", "")
    assert not plotting.small_budget() and plotting.budget(100, 5) == 100


def test_pictures():
    img = torch.zeros(3, 4, 5)
    img[0] = 1.0                                                           # red
    pic = Image.open(io.BytesIO(plotting.png(img, scale=3)))
    assert pic.size == (15, 12) and pic.getpixel((0, 0)) == (255, 0, 0)
    grey = Image.open(io.BytesIO(plotting.png(torch.full((4, 4), 0.5))))
    assert grey.getpixel((1, 1)) == (128, 128, 128)
    sheet = Image.open(io.BytesIO(plotting.png_sheet(torch.zeros(5, 3, 2, 2), cols=3, tile=8, gap=2)))
    assert sheet.size == (3 * 8 + 2 * 2, 2 * 8 + 2)
    assert sheet.getpixel((0, 0)) == (0, 0, 0) and sheet.getpixel((9, 0)) == (255, 255, 255)   # a tile, a gap
    assert plotting.data_uri(b"\x89PNG").startswith("data:image/png;base64,")
    fig = plotting.image_grid([img, img[0]], titles=["a", "b"], cols=2, title="t")
    assert len(fig.data) == 2 and fig.layout.title.text == "t"
    x = torch.rand(7, 3, 8, 8)
    assert plotting.dataset_note("digits", x, list("abc")) == \
        "scikit-learn digits (offline fallback): 7 images of (3, 8, 8), 3 classes"


def test_sphere_axes():
    fig = plotting.sphere_axes(go.Figure([plotting.sphere_surface()]), 300)
    assert fig.layout.height == 300 and fig.layout.scene.aspectmode == "cube"
    assert list(fig.layout.scene.xaxis.range) == [-1.1, 1.1]

