import pytest
import torch
import torch.nn as nn

import nattools
from nattools.models import FrontEnd, alexnet, small_net


@pytest.mark.parametrize("size", [32, 64, 96])
def test_small_net_embed_and_features(size):
    torch.manual_seed(0)
    m = small_net(d=16, width=8).eval()
    x = torch.rand(4, 3, size, size)
    z = m.embed(x)
    assert z.shape == (4, 16)
    assert torch.allclose(z.norm(dim=1), torch.ones(4), atol=1e-5)
    f = m.features(x)
    assert f.ndim == 4 and f.shape[:2] == (4, 16) and f.shape[2] == size // 8


def test_small_net_without_hidden_layer_projects_pooled_features_linearly():
    m = small_net(d=16, width=8, hidden=0).eval()
    assert [type(l) for l in m.head] == [nn.AdaptiveAvgPool2d, nn.Flatten, nn.Linear]
    assert m.head[-1].in_features == 4 * 16  # 2x2 pool of the last conv block's 2w channels
    z = m.embed(torch.rand(3, 3, 32, 32))
    assert z.shape == (3, 16) and torch.allclose(z.norm(dim=1), torch.ones(3), atol=1e-5)
    with pytest.raises(ValueError, match=r"hidden=-1: must be in \[0, 65536\]"):
        nattools.TrainConfig(hidden=-1).validate()


def test_alexnet_shapes_at_224():
    torch.manual_seed(0)
    m = alexnet(d=32).eval()
    x = torch.rand(2, 3, 224, 224)
    assert m.features(x).shape == (2, 256, 6, 6)
    z = m.embed(x)
    assert z.shape == (2, 32) and torch.allclose(z.norm(dim=1), torch.ones(2), atol=1e-5)
    convs = [l.out_channels for l in m.trunk if isinstance(l, nn.Conv2d)]
    assert convs == [96, 256, 384, 384, 256]


@pytest.mark.parametrize("make", [lambda: small_net(d=8, width=8), lambda: alexnet(d=8)])
def test_last_layer_is_linear_so_outputs_can_be_negative(make):
    m = make()
    assert isinstance(m.head[-1], nn.Linear)  # no ReLU before the normalisation
    m.eval()
    size = 224 if m.trunk[0].kernel_size == (11, 11) else 32
    z = m.embed(torch.rand(8, 3, size, size))
    assert (z < 0).any() and (z > 0).any()


def test_front_end_is_fixed_and_not_in_the_optimiser():
    m = small_net(d=8, width=8)
    assert list(m.front.parameters()) == []
    names = {n for n, _ in m.named_parameters()}
    assert not any(n.startswith("front.") for n in names)
    assert {"front.sobel", "front.mean", "front.std"} <= set(m.state_dict())  # travels in checkpoints


def test_sobel_sees_edges_not_colour():
    fe = FrontEnd("sobel")
    x = torch.zeros(1, 3, 8, 8)
    x[..., 4:] = 1.0                            # vertical edge between columns 3 and 4
    y = fe(x)
    assert y.shape == (1, 2, 8, 8)
    assert y[0, 0, 2:6, 3:5].abs().min() > 0    # d/dx responds at the edge
    assert y[0, 0, 2:6, :2].abs().max() < 1e-5  # flat regions give zero
    assert y[0, 1, 2:6, 2:6].abs().max() < 1e-5  # d/dy sees no horizontal edge
    # A uniform colour cast changes the grey level by a constant: Sobel does not see it
    tinted = x.clone()
    tinted[:, 0] = tinted[:, 0] * 0.7 + 0.2
    tinted[:, 2] = tinted[:, 2] * 0.7 + 0.2
    y2 = fe(tinted)
    assert torch.allclose(y2 / y2.abs().max(), y / y.abs().max(), atol=1e-5)
    assert FrontEnd("grey").out_channels == 1 and FrontEnd("rgb")(torch.rand(1, 3, 4, 4)).shape[1] == 3


def test_build_model_and_unknowns():
    cfg = nattools.TrainConfig(d=12, width=8)
    m = nattools.build_model(cfg)
    assert m.embed(torch.rand(2, 3, 32, 32)).shape == (2, 12)
    with pytest.raises(ValueError, match="unknown model"):
        nattools.build_model(nattools.TrainConfig(model="vgg"))
    with pytest.raises(ValueError, match="unknown input"):
        FrontEnd("hsv")
