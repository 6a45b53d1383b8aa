"""nattools.study.plotting: the page setup (by a call, not on import), budgets, pictures."""
import io
import subprocess
import sys

import plotly.graph_objects as go
import pytest
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


def test_a_sample_holds_data_sample_s_images_and_decodes_them_on_demand():
    from nattools import data
    x, y, idx, classes = data.sample("digits", 30, "val", seed=4)
    s = plotting.Sample("digits", 30, "val", seed=4)
    assert torch.equal(s.idx, idx) and torch.equal(s.labels, y) and s.classes == classes
    assert len(s) == 30 and s.shape == (30, 3, 32, 32) and not s._decoded
    assert torch.equal(s[3], x[3]) and list(s._decoded) == [3]            # one image opened
    assert torch.equal(s.images(), x) and torch.equal(s.images([5, 2]), x[[5, 2]])


def test_stored_reads_back_only_what_was_made_from_the_same_inputs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data" / "results").mkdir(parents=True)
    calls = []

    def compute():
        calls.append(1)
        return {"z": torch.arange(3.0), "n": 3}
    key = ("a measurement", torch.arange(4), torch.nn.Linear(2, 2))
    value, read = plotting.stored("x", key, compute)
    assert not read and value["n"] == 3 and torch.equal(value["z"], torch.arange(3.0))
    assert not (tmp_path / "data/results/book/x.pt").exists()            # written only when asked to
    monkeypatch.setenv("NATTOOLS_STORE", "1")
    plotting.stored("x", key, compute)
    monkeypatch.delenv("NATTOOLS_STORE")
    value, read = plotting.stored("x", key, compute)
    assert read and len(calls) == 2 and torch.equal(value["z"], torch.arange(3.0))
    _, read = plotting.stored("x", ("a measurement", torch.arange(5), key[2]), compute)
    assert not read and len(calls) == 3                                    # other inputs: computed again
    assert plotting.digest(torch.zeros(2)) != plotting.digest(torch.zeros(2, dtype=torch.int64))


def test_claims_fail_the_book_build_and_only_warn_elsewhere(monkeypatch, capsys):
    monkeypatch.delenv("NATTOOLS_BUDGET", raising=False)
    claim = plotting.claims("cifar10")
    claim(True, "it holds")
    with pytest.raises(AssertionError, match="it does not hold"):
        claim(False, "it does not hold")
    plotting.claims("digits")(False, "a CIFAR-10 sentence")
    monkeypatch.setenv("NATTOOLS_BUDGET", "small")
    plotting.claims("cifar10")(False, "a full-budget sentence")
    out = capsys.readouterr().out
    assert "a CIFAR-10 sentence" in out and "a full-budget sentence" in out
