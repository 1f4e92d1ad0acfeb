"""Integrated Gradients and the deletion / insertion curves (featviz.attribution)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import featviz
from featviz.attribution import (deletion_curve, faithfulness_curve, insertion_curve,
                                 integrated_gradients, random_ranking)


def _linear() -> nn.Module:
    """Two classes from a 1 x 2 x 2 image: logits = W @ pixels."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2, bias=False))
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([[3.0, 1.0, -1.0, 2.0], [0.0, 0.0, 0.0, 0.0]]))
    return model


X = torch.tensor([[[1.0, 1.0], [1.0, 1.0]]])          # one image (1, 2, 2)
MAP = torch.tensor([[0.9, 0.1], [0.5, 0.7]])          # ranking: pixel 0, 3, 2, 1


def _p0(pixels: list[float]) -> float:
    """P(class 0) by hand: softmax of (w . pixels, 0)."""
    z = 3 * pixels[0] + 1 * pixels[1] - 1 * pixels[2] + 2 * pixels[3]
    return float(torch.sigmoid(torch.tensor(z)))


def test_deletion_and_insertion_equal_a_hand_computation() -> None:
    model = _linear()
    d = deletion_curve(model, X, MAP, target=0, fill=0.0)
    # removed in the order 0, 3, 2, 1
    kept = [[1, 1, 1, 1], [0, 1, 1, 1], [0, 1, 1, 0], [0, 1, 0, 0], [0, 0, 0, 0]]
    expected = torch.tensor([_p0(k) for k in kept], dtype=torch.float64)
    assert torch.allclose(d.fractions, torch.tensor([0, 0.25, 0.5, 0.75, 1.0], dtype=torch.float64))
    assert torch.allclose(d.probability[0], expected, atol=1e-6)
    area = sum((expected[i] + expected[i + 1]) / 2 * 0.25 for i in range(4))
    assert d.area[0] == pytest.approx(float(area), abs=1e-6)

    ins = insertion_curve(model, X, MAP, target=0, fill=0.0, step=2)
    inserted = [[0, 0, 0, 0], [1, 0, 0, 1], [1, 1, 1, 1]]
    expected = torch.tensor([_p0(k) for k in inserted], dtype=torch.float64)
    assert torch.allclose(ins.fractions, torch.tensor([0, 0.5, 1.0], dtype=torch.float64))
    assert torch.allclose(ins.probability[0], expected, atol=1e-6)
    assert ins.area[0] == pytest.approx(float((expected[0] + 2 * expected[1] + expected[2]) / 4),
                                        abs=1e-6)


def test_fill_value_is_used() -> None:
    model = _linear()
    d = deletion_curve(model, X, MAP, target=0, fill=-1.0)
    assert d.probability[0, 1] == pytest.approx(_p0([-1, 1, 1, 1]), abs=1e-6)


def test_random_ranking_sits_near_the_floor_and_occlusion_beats_it() -> None:
    model = featviz.pretrained()
    images, labels = featviz.digit_examples()
    images, labels = images[:4], labels[:4]
    ideal = featviz.occlusion(model, images, labels, window=2, stride=2)
    rand = random_ranking(ideal, seed=0)
    kw = dict(target=labels, step=28)
    d_ideal, d_rand = deletion_curve(model, images, ideal, **kw), deletion_curve(model, images, rand, **kw)
    i_ideal, i_rand = insertion_curve(model, images, ideal, **kw), insertion_curve(model, images, rand, **kw)
    assert d_ideal.area.mean() < d_rand.area.mean() - 0.2
    assert i_ideal.area.mean() > i_rand.area.mean() + 0.2
    # the floor: a second random draw gives about the same areas
    rand2 = random_ranking(ideal, seed=1)
    assert not torch.equal(rand, rand2)
    assert abs(float(deletion_curve(model, images, rand2, **kw).area.mean() - d_rand.area.mean())) < 0.15
    # both ends of every curve are the same for any ranking: the image, and nothing of it
    assert torch.allclose(d_ideal.probability[:, [0, -1]], d_rand.probability[:, [0, -1]])


def test_integrated_gradients_completeness() -> None:
    model = featviz.pretrained()
    images, labels = featviz.digit_examples()
    for baseline in ("min", 0.0):
        ig = integrated_gradients(model, images, labels, baseline=baseline, steps=64)
        assert ig.shape == (10, 28, 28)
        base = (images.flatten(1).min(1).values.view(-1, 1, 1, 1).expand_as(images)
                if baseline == "min" else torch.zeros_like(images))
        with torch.no_grad():
            change = model(images)[range(10), labels] - model(base)[range(10), labels]
        err = (ig.sum(dim=(1, 2)) - change).abs() / change.abs()
        assert err.max() < 0.01, err


def test_integrated_gradients_single_image_and_model_left_alone() -> None:
    model = featviz.pretrained().train()
    images, _ = featviz.digit_examples()
    one = integrated_gradients(model, images[3], steps=8)
    assert one.shape == (28, 28)
    assert torch.allclose(one, integrated_gradients(model, images[3:4], steps=8, batch_size=3)[0],
                          atol=1e-5)
    assert model.training and all(p.requires_grad and p.grad is None for p in model.parameters())


def test_errors_name_the_bad_argument() -> None:
    model = _linear()
    with pytest.raises(ValueError, match="mode"):
        faithfulness_curve(model, X, MAP, mode="erase")
    with pytest.raises(ValueError, match="step"):
        deletion_curve(model, X, MAP, step=0)
    with pytest.raises(ValueError, match="attribution has shape"):
        deletion_curve(model, X, torch.zeros(3, 3))
    with pytest.raises(ValueError, match="steps"):
        integrated_gradients(model, X, steps=0)
    with pytest.raises(ValueError, match="baseline"):
        integrated_gradients(model, X, baseline="blur")
    with pytest.raises(ValueError, match="baseline has shape"):
        integrated_gradients(model, X, baseline=torch.zeros(3, 3))


def test_plot_draws_one_line_per_map() -> None:
    import matplotlib
    matplotlib.use("Agg")
    model = _linear()
    curves = {"map": deletion_curve(model, X, MAP), "random": deletion_curve(model, X, random_ranking(MAP))}
    ax = featviz.plot_faithfulness(curves)
    assert len(ax.lines) == 2 and "map" in ax.get_legend().get_texts()[0].get_text()
    with pytest.raises(ValueError, match="mix modes"):
        featviz.plot_faithfulness({"a": curves["map"], "b": insertion_curve(model, X, MAP)})
