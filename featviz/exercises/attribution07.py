"""Lesson 07's faithfulness exercise (p3): does placing Grad-CAM by receptive field make it
more faithful than stretching it? Re-exported by :mod:`featviz.exercises.lesson07`."""
from __future__ import annotations

from functools import lru_cache
from typing import Any

from . import Exercise, Wrong, as_choice

#: pixels removed per step of the lesson's deletion curves (28 x 28 = 56 steps of 14)
STEP = 14


@lru_cache(maxsize=1)
def grad_cam_deletion_areas() -> tuple[float, float]:
    """Mean deletion area of relu2's Grad-CAM over the ten example digits: (placed, stretched)."""
    from ..attribution import deletion_curve
    from ..data import digit_examples
    from ..explain import grad_cam
    from ..models import pretrained

    images, labels = digit_examples()
    model = pretrained().cpu().eval()
    areas = []
    for upsample in ("rf", "bilinear"):
        cam = grad_cam(model, images, "relu2", labels, upsample=upsample)
        areas.append(float(deletion_curve(model, images, cam, labels, step=STEP).area.mean()))
    return areas[0], areas[1]


def more_faithful_grad_cam() -> str:
    """p3's answer, measured: 'yes' when placed Grad-CAM's deletion curve has the smaller area."""
    placed, stretched = grad_cam_deletion_areas()
    return "yes" if placed < stretched else "no"


def _placed_or_stretched(answer: Any) -> None:
    choice = as_choice(answer, {"yes": ("y", "placed", "true"), "no": ("n", "stretched", "false")},
                       "'yes' or 'no'")
    right = more_faithful_grad_cam()
    if choice == right:
        return
    placed, stretched = grad_cam_deletion_areas()
    if right == "yes":
        raise Wrong("stretching moves each unit's evidence outwards, off the strokes onto the "
                    "background; deleting background pixels costs the model nothing, so the "
                    f"stretched map's curve falls more slowly (mean area {stretched:.2f} against "
                    f"{placed:.2f} placed).")
    raise Wrong(f"on these digits the stretched map's curve falls faster (mean area "
                f"{stretched:.2f} against {placed:.2f} placed).")


p3 = Exercise(
    name="p3",
    prompt="Predict: delete pixels in the order relu2's Grad-CAM ranks them, once drawn placed "
           "by receptive field and once stretched edge to edge. Does placing make the map more "
           "faithful, its deletion area below the stretched map's: 'yes' or 'no'?",
    checker=_placed_or_stretched,
    hint_text="Section 3: stretching moves the evidence outwards. Where does it land, and what "
              "does deleting a pixel there do to the score?",
    solution_text="answer = 'yes'",
    kind="predict",
    giveaways=("placed Grad-CAM is more faithful",),
    reference=more_faithful_grad_cam,
)
