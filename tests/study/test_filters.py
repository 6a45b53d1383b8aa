import dataclasses

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import nattools
from nattools import evaluate
from nattools.study import filters as FL
from nattools.models import FrontEnd, alexnet, small_net


def test_grey_kernels_equal_sobel_then_conv1():
    torch.manual_seed(0)
    model = small_net(d=8, width=4)
    x = torch.rand(2, 3, 20, 20)
    conv1 = FL.conv_layers(model)[0]
    direct = conv1(model.front(x))                                   # (2,4,20,20)
    k = FL.grey_kernels(FL.first_filters(model))                     # (4,7,7)
    assert k.shape == (4, 7, 7)
    via_grey = F.conv2d(FrontEnd("grey")(x), k[:, None])             # centres 3..16
    assert torch.allclose(direct[..., 3:17, 3:17], via_grey, atol=1e-5)  # away from both paddings


def test_initial_model_is_where_training_starts(tiny_cfg):
    cfg = tiny_cfg(lr=1e-9, epochs=1, max_steps=1)                   # training leaves the weights as they were
    nattools.train(cfg)
    trained, cfg2 = nattools.load_checkpoint(cfg.checkpoint_path)
    before = torch.get_rng_state()
    start = evaluate.initial_model(cfg2)
    assert torch.equal(torch.get_rng_state(), before)                # the global generator is untouched
    w, w0 = FL.first_filters(trained), FL.first_filters(start)
    assert torch.allclose(w, w0, atol=1e-6)
    other = FL.first_filters(evaluate.initial_model(dataclasses.replace(cfg2, seed=cfg2.seed + 1)))
    assert FL.cosine_to_start(other, w0).abs().mean() < 0.5


def test_the_random_baseline_is_the_start_of_training():
    cfg = nattools.TrainConfig(width=4, d=8, seed=3)
    x = torch.rand(64, 3, 32, 32) * 0.1 + 0.6
    rnd = evaluate.random_init(cfg, x)                               # the chapter's "random" network
    for a, b in zip(FL.conv_layers(rnd), FL.conv_layers(evaluate.initial_model(cfg))):
        assert torch.equal(a.weight, b.weight)


def test_learned_part_and_cosine_to_start():
    g = torch.Generator().manual_seed(0)
    w0 = torch.randn(6, 2, 5, 5, generator=g)
    v = torch.randn(6, 2, 5, 5, generator=g)
    v = FL.learned_part(v, w0)                                       # orthogonal to each start filter
    assert (v.flatten(1) * w0.flatten(1)).sum(1).abs().max() < 1e-4
    w = 0.5 * w0 + v                                                 # shrunk start + a new direction
    assert torch.allclose(FL.learned_part(w, w0), v, atol=1e-5)
    assert torch.allclose(FL.cosine_to_start(3 * w0, w0), torch.ones(6), atol=1e-6)
    assert (FL.cosine_to_start(w, w0) < 1).all()


def test_smoothness_separates_smooth_from_random_filters():
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(500, 2, 5, 5, generator=g)
    assert abs(float(FL.smoothness(noise).mean())) < 0.05
    r = torch.arange(5.0)
    blob = torch.exp(-((r[:, None] - 2) ** 2 + (r[None, :] - 2) ** 2) / 4)
    ramp = r[None, :].expand(5, 5)
    smooth = torch.stack([torch.stack([blob, ramp]), torch.stack([ramp, -blob])])
    assert (FL.smoothness(smooth) > 0.6).all()
    checker = (-1.0) ** (r[:, None] + r[None, :])
    assert FL.smoothness(checker[None]) < -0.9


def test_orientation_selectivity_of_gratings_and_blobs():
    r = torch.arange(15.0) - 7
    yy, xx = torch.meshgrid(r, r, indexing="ij")
    window = torch.exp(-(xx ** 2 + yy ** 2) / 50)
    grating = torch.cos(1.5 * xx) * window
    blob = torch.exp(-(xx ** 2 + yy ** 2) / 4) - 0.5 * torch.exp(-(xx ** 2 + yy ** 2) / 8)  # centre-surround
    s = FL.orientation_selectivity(torch.stack([grating, grating.T, blob]))
    assert s[0] > 0.9 and abs(float(s[0] - s[1])) < 1e-6             # rotating a kernel keeps its selectivity
    assert s[2] < 0.05
    assert ((0 <= s) & (s <= 1 + 1e-6)).all()


def test_receptive_fields_of_the_nets():
    fields = FL.receptive_fields(small_net(d=8, width=4))
    assert [f.size for f in fields] == [7, 16, 26, 34, 42]          # Sobel's 3x3 included
    assert [f.jump for f in fields] == [1, 2, 4, 4, 4]
    assert FL.receptive_fields(alexnet(d=8))[0].size == 13          # 11x11 stride 4 after Sobel


@pytest.mark.parametrize("layer", range(5))
def test_a_unit_depends_only_on_its_receptive_field(layer):
    torch.manual_seed(layer)
    model = small_net(d=8, width=4).eval()
    x = torch.rand(1, 3, 48, 48, requires_grad=True)
    h = model.front(x)
    relus = 0
    for m in model.trunk:
        h = m(h) if not isinstance(m, nn.ReLU) else F.relu(h)        # not in place: keep the graph simple
        if isinstance(m, nn.ReLU):
            if relus == layer:
                break
            relus += 1
    _, _, hh, ww = h.shape
    i, j = hh // 2, ww // 2
    c = int(h[0, :, i, j].argmax())                                  # an active unit near the centre
    h[0, c, i, j].backward()
    support = x.grad[0].abs().sum(0) > 0                             # (48,48) pixels the unit depends on
    f = FL.receptive_fields(model)[layer]
    top, left = f.corner(i), f.corner(j)
    box = torch.zeros_like(support)
    box[max(top, 0): top + f.size, max(left, 0): left + f.size] = True
    assert support.any() and not (support & ~box).any()             # nothing outside the field
    if layer == 0:
        assert torch.equal(support, box)                             # and conv1's field is filled exactly


def _dot_detector():
    """conv1 channel 0 = the Sobel x-response at its centre pixel; every other weight 0."""
    model = small_net(d=8, width=4).eval()
    conv1 = FL.conv_layers(model)[0]
    with torch.no_grad():
        conv1.weight.zero_()
        conv1.weight[0, 0, 2, 2] = 1.0
    return model


def test_top_patches_find_planted_dots_in_order():
    x = torch.full((10, 3, 32, 32), 0.2)
    x[7, :, 5, 20] += 0.4                                            # the strongest dot
    x[3, :, 10, 12] += 0.3
    x[1, :, 31, 30] += 0.1                                           # faint, at the image border
    maxima = FL.layer_maxima(_dot_detector(), x, batch_size=4)
    assert [m.name for m in maxima] == ["conv1", "conv2", "conv3", "conv4", "conv5"]
    lm = maxima[0]
    assert lm.value.shape == lm.image.shape == (10, 4)                # top 16 of 10 images: all, strongest first
    crops, idx, values = FL.top_patches(x, lm, channel=0, k=3)
    assert idx.tolist() == [7, 3, 1]
    assert (values[:-1] > values[1:]).all() and values[-1] > 0
    # Sobel x of a dot at column c peaks one pixel to its right; the crop is the 7x7 field around it
    assert (int(lm.row[0, 0]), int(lm.col[0, 0])) == (5, 21)
    assert torch.equal(crops[0], x[7, :, 2:9, 18:25]) and torch.equal(crops[1], x[3, :, 7:14, 10:17])
    assert crops.shape == (3, 3, 7, 7)
    assert torch.equal(crops[2][:, :4, :4], x[1, :, 28:32, 28:32])  # the part inside the image ...
    assert (crops[2][:, 4:, :] == 0.5).all() and (crops[2][:, :, 4:] == 0.5).all()  # ... and grey outside


def test_class_purity_and_its_chance_level():
    labels = torch.tensor([0, 1] * 10)                               # 20 images, 2 classes
    image = torch.stack([torch.arange(19, 0, -2), torch.arange(19, 9, -1)], 1)  # (10, 2) top rows
    # channel 0: its top images are all of class 1; channel 1: alternating classes
    zeros = torch.zeros(10, 2, dtype=torch.long)
    lm = FL.LayerMaxima("conv1", image, -torch.arange(10.0)[:, None].repeat(1, 2), zeros, zeros,
                        FL.ReceptiveField(7, 1, 0.0))
    assert FL.class_purity(lm, labels, k=4).tolist() == [1.0, 0.5]
    # two equally likely classes, k = 2: the pair agrees with probability 9/19 (without replacement)
    assert abs(FL.chance_purity(labels, k=2, draws=4000) - (9 / 19 + 0.5 * 10 / 19)) < 0.02


def test_figures_and_app_build_and_the_app_reacts():
    torch.manual_seed(0)
    model = small_net(d=8, width=4).eval()
    w = FL.first_filters(model)
    fig = FL.filters_figure({"a": w, "b": 2 * w}, order=[3, 1, 0])
    assert fig.data[0].z.shape == (3 * 5 + 2, 2 * 11 + 4)            # 3 rows of filters; 2 columns of 5 | 5 pairs
    assert list(fig.layout.xaxis.ticktext) == ["a", "b"] and list(fig.layout.yaxis.ticktext)[0] == "filter 3"
    assert FL.kernels_figure({"a": FL.grey_kernels(w)}, order=[0, 1]).data[0].z.shape == (7 + 1 + 7, 7)
    assert len(FL.stats_figure({"a": (torch.rand(4), torch.rand(4))}).data) == 1
    x = torch.rand(12, 3, 32, 32)
    layers = {"net": FL.layer_maxima(model, x)}
    fig = FL.patches_slider(x, layers, torch.arange(12) % 3, per_network=2, k=4)
    assert len(fig.data) == 5 and [t.visible for t in fig.data] == [False] * 4 + [True]   # conv5 first
    assert len(fig.layout.yaxis.ticktext) == 2 and fig.layout.yaxis.ticktext[0].startswith("net, ch.")
    app = FL.patches_app(x, layers, layer=1, k=4, labels=torch.arange(12) % 3, classes=["a", "b", "c"])
    controls, info, sheet = app.children
    first = sheet.value
    net, lay, chan = controls.children
    chan.value = 3
    assert sheet.value != first and "channel 3" in info.value
    lay.value = 0
    assert "conv1" in info.value and chan.max == 3


def test_channel_maxima_are_measured_once_and_read_back(tiny_cfg, tmp_path, monkeypatch):
    """channel_maxima stores what it measured (NATTOOLS_STORE) and reads it back only for the same
    networks and images: the random twin is measured with BatchNorm statistics of those images."""
    from nattools.study import chapter
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data" / "results").mkdir(parents=True)
    monkeypatch.setenv("NATTOOLS_STORE", "1")
    cfg = nattools.TrainConfig(width=4, d=8, seed=1)
    sample = chapter.Sample("digits", 40)
    models = {"random": ("random", cfg), "net": small_net(d=8, width=4)}
    first, read = FL.channel_maxima(models, sample, top=5)
    assert not read and (tmp_path / "data/results/book/07_filters.pt").is_file()
    again, read = FL.channel_maxima(models, sample, top=5)
    assert read and all(torch.equal(a.image, b.image) and torch.equal(a.value, b.value)
                        for k in models for a, b in zip(first[k], again[k]))
    live = FL.layer_maxima(evaluate.random_init(cfg, sample.images()), sample.images(), top=5)
    assert all(torch.equal(a.image, b.image) and a.field == b.field for a, b in zip(first["random"], live))
    _, read = FL.channel_maxima(models, sample, top=4)                  # another measurement: not the file's
    assert not read
