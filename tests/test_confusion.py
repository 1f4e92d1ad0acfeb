"""Reading a confusion matrix: the most frequent mistakes (ties kept) and its figure."""
from __future__ import annotations

import matplotlib
import pytest
import torch

import featviz
from featviz.confusion import _text_colour

matplotlib.use("Agg")


def test_top_confusions_keeps_a_tie_with_the_last_place():
    cm = torch.tensor([[50, 4, 1, 0],
                       [2, 40, 2, 2],
                       [0, 4, 30, 0],
                       [1, 0, 0, 20]])
    # 4, 4, then three pairs with 2: the third place is shared, so all three are kept
    assert featviz.top_confusions(cm, k=3) == [(0, 1, 4), (2, 1, 4), (1, 0, 2), (1, 2, 2), (1, 3, 2)]
    assert featviz.top_confusions(cm, k=2) == [(0, 1, 4), (2, 1, 4)]
    assert all(i != j for i, j, _ in featviz.top_confusions(cm, k=10))     # never a hit
    assert len(featviz.top_confusions(cm, k=10)) == 7                      # only pairs that occur


@pytest.mark.parametrize("bad, message", [
    (torch.zeros(2, 3), "square"),
    (torch.tensor([[1, -1], [0, 2]]), "counts"),
])
def test_top_confusions_refuses_what_is_not_a_confusion_matrix(bad, message):
    with pytest.raises(ValueError, match=message):
        featviz.top_confusions(bad)
    with pytest.raises(ValueError, match="k is how many"):
        featviz.top_confusions(torch.eye(3, dtype=torch.long), k=0)


def test_counts_are_white_on_dark_cells_and_black_on_light_ones():
    reds = matplotlib.colormaps["Reds"]
    assert _text_colour(reds(1.0)) == "white"
    assert _text_colour(reds(0.0)) == "black"
    assert _text_colour((1.0, 1.0, 0.0, 1.0)) == "black"      # yellow is light though saturated


def test_the_figure_writes_each_mistake_in_a_colour_that_reads():
    cm = torch.tensor([[30, 9, 0], [1, 25, 0], [0, 0, 20]])
    fig = featviz.plot_confusion(cm, labels=["a", "b", "c"])
    ax = fig.axes[0]
    counts = {t.get_text(): t.get_color() for t in ax.texts}
    assert counts == {"9": "white", "1": "black"}       # the diagonal is left out
    assert ax.get_title() == "10 mistakes in 85 images"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]
    full = featviz.plot_confusion(cm, mistakes_only=False)
    assert "30" in {t.get_text() for t in full.axes[0].texts}
