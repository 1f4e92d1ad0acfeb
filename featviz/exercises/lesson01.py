"""Exercises of lesson 01 (data): pixels, normalisation, batches."""
from __future__ import annotations

from typing import Any

import torch

from . import (Exercise, Questionnaire, Wrong, as_int, as_number, call, need_function)
from . import reading as _reading
from ..data import MNIST_MEAN, MNIST_STD, load_mnist


def _ink_count() -> int:
    """The right answer of q2: pixels of test[0] brighter than black, after normalisation."""
    image, _ = load_mnist(train=False)[0]
    black = (0.0 - MNIST_MEAN) / MNIST_STD
    return int((image > black + 1e-4).sum())


def _ink(answer: Any) -> None:
    n = as_int(answer, "a number of pixels")
    image, _ = load_mnist(train=False)[0]
    ink = _ink_count()
    if n == ink:
        return
    if n == int((image > 0).sum()):
        raise Wrong(f"{n} counts the pixels above 0 after Normalize. Black is not 0 there but "
                    f"(0 - mean) / std, about -0.42, so the faintest ink, between -0.42 and 0, "
                    f"was left out: compare with image.min().")
    if n == image.numel() - ink:
        raise Wrong(f"{n} is the background: the pixels that are exactly black.")
    if n == image.numel():
        raise Wrong("that is every pixel of the image; most of them are black background.")
    raise Wrong(f"{n} is not it: count the pixels of test[0] whose value is above the black "
                f"value, image.min().")


q2 = Exercise(
    name="q2",
    prompt="How many of the 784 pixels of test[0], the 7 above, carry ink: how many are "
           "brighter than black, in the normalised image?",
    checker=_ink,
    hint_text="image, label = test[0] is normalised: black is image.min(), not 0. Compare the "
              "image with it and count the True values with .sum().",
    solution_text="answer = int((image > image.min()).sum())",
    reference=_ink_count,
)


def _black(answer: Any) -> None:
    expected = (0.0 - MNIST_MEAN) / MNIST_STD
    value = as_number(answer)
    if abs(value - expected) < 0.01:        # -0.42, -0.424, -0.4242: a reading to two places
        return
    if abs(value) < 1e-9:
        raise Wrong("0 is a black pixel BEFORE normalisation; Normalize subtracts the mean first.")
    if abs(value - 1.0) < 1e-3 or abs(value - 255) < 1e-3:
        raise Wrong("that is a white pixel; a black one is 0 before normalisation.")
    if abs(value - (-MNIST_MEAN)) < 1e-3:
        raise Wrong("you subtracted the mean; Normalize then divides by the std too.")
    if abs(value - expected) < 0.05:
        raise Wrong(f"close: {value:g} is {abs(value - expected):.2f} from the value; work it out "
                    f"to two decimal places, (0 - mean) / std.")
    raise Wrong(f"{value:.4f} is not it. Normalize computes (x - mean) / std with x = 0.")


p2 = Exercise(
    name="p2",
    prompt="Predict: what value does a black pixel have after the standard normalisation?",
    checker=_black,
    hint_text="A black pixel is 0 after ToTensor. Normalize computes (x - mean) / std "
              "with featviz.MNIST_MEAN and featviz.MNIST_STD.",
    solution_text="answer = (0 - featviz.MNIST_MEAN) / featviz.MNIST_STD   # about -0.4242",
    kind="predict",
    giveaways=("-0.4242", "-0.424"),
    reference=lambda: (0.0 - MNIST_MEAN) / MNIST_STD,
)


def _sevens_in_test() -> int:
    """The right answer of q3 (the test split is the official one, full MNIST or sample)."""
    return int((load_mnist(train=False).targets == 7).sum())


def _sevens(answer: Any) -> None:
    n = as_int(answer, "a number of images")
    if n == _sevens_in_test():
        return
    train_sevens = int((load_mnist(train=True).targets == 7).sum())
    if n == train_sevens:
        raise Wrong(f"{n} is the number of 7s in the training set; the question asks about "
                    f"the test set.")
    if n == 7:
        raise Wrong("7 is the label; count the images that carry it.")
    if n == 1000:
        raise Wrong("the classes are not exactly balanced: count them, test.targets == 7.")
    raise Wrong(f"{n} is not it: count the True values of test.targets == 7.")


q3 = Exercise(
    name="q3",
    prompt="How many images of the digit 7 does the test set hold?",
    checker=_sevens,
    hint_text="test.targets holds every label of the test set as one tensor; (test.targets == 7) "
              "is True where the digit is a 7, and .sum() counts the Trues.",
    solution_text="answer = int((test.targets == 7).sum())",
    reference=_sevens_in_test,
)


def measured_constants() -> tuple[float, float]:
    """The mean and std of every training pixel on the [0, 1] scale, measured as q1 asks."""
    return _solution(load_mnist(train=True).data)


def _solution(pixels: torch.Tensor) -> tuple[float, float]:
    std, mean = torch.std_mean(pixels.float() / 255)
    return float(mean), float(std)


# --------------------------------------------------------------------------- code: mean and std

def _pixel_cases() -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    ink = torch.randint(0, 256, (6, 28, 28), generator=gen, dtype=torch.uint8)
    ink[torch.rand(6, 28, 28, generator=gen) < 0.8] = 0           # mostly black, like MNIST
    small = torch.randint(0, 256, (3, 1, 8, 8), generator=gen, dtype=torch.uint8)
    white = torch.full((1, 5, 5), 255, dtype=torch.uint8)
    return [ink, small, white, torch.zeros(2, 4, 4, dtype=torch.uint8)]


def _pair_of_numbers(result: Any) -> tuple[float, float]:
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        raise Wrong(f"return a pair (mean, std), e.g. `return mean, std`; your function "
                    f"returned {type(result).__name__}.")
    out = []
    for name, value in zip(("mean", "std"), result):
        if isinstance(value, torch.Tensor) and value.numel() != 1:
            raise Wrong(f"the {name} should be one number for all the pixels together, but it "
                        f"has shape {tuple(value.shape)}: take it over the whole tensor, "
                        f"with no dim argument.")
        out.append(as_number(value, f"the {name} as a number"))
    return out[0], out[1]


def _norm_constants(answer: Any) -> str:
    fn = need_function(answer, "norm_constants(pixels)")
    for pixels in _pixel_cases():
        before = pixels.clone()
        mean, std = _pair_of_numbers(call(fn, pixels, returns="the pair (mean, std)"))
        if not torch.equal(pixels, before):
            raise Wrong("your function changed the pixels it was given (an in-place operation "
                        "such as div_ or pixels[...] = ...): compute on a copy, "
                        "pixels.float() / 255 makes one.")
        x = pixels.double() / 255
        true_mean = float(x.mean())
        stds = (float(x.std()) if x.numel() > 1 else 0.0, float(x.std(unbiased=False)))
        mean_ok = abs(mean - true_mean) < 1e-4
        std_ok = any(abs(std - s) < 1e-4 for s in stds)
        if mean_ok and std_ok:
            continue
        _explain_constants(pixels, mean, std, true_mean, stds)
    return "Checked on 4 batches, an all-white and an all-black one included."


def _explain_constants(pixels: torch.Tensor, mean: float, std: float, true_mean: float,
                       stds: tuple[float, float]) -> None:
    shape = tuple(pixels.shape)
    x = pixels.double() / 255
    if abs(mean - stds[0]) < 1e-4 and abs(std - true_mean) < 1e-4 and true_mean != stds[0]:
        raise Wrong("mean and std are swapped: return (mean, std) in that order.")
    if abs(mean - 255 * true_mean) < 1e-2 and true_mean > 0:
        raise Wrong(f"for pixels of shape {shape} your mean is {mean:.4g}: that is on the "
                    f"0-255 scale of the bytes. ToTensor divides by 255 first, so the constants "
                    f"are on the [0, 1] scale: expected {true_mean:.4f}.")
    if abs(mean - true_mean) < 1e-4:
        flat = x.reshape(x.shape[0], -1)
        per_image = float(flat.std(dim=1).mean()) if flat.shape[1] > 1 else None
        if any(abs(std - s * s) < 1e-5 for s in stds) and stds[1] not in (0.0, 1.0):
            raise Wrong("that std is the variance: take its square root.")
        if per_image is not None and abs(std - per_image) < 1e-4 and len(flat) > 1:
            raise Wrong("that is the average of each image's std; Normalize needs the std of "
                        "all the pixels together (over every image at once).")
        raise Wrong(f"the mean is right; the std is not: for pixels of shape {shape} expected "
                    f"{stds[0]:.4f}, got {std:.4f}.")
    raise Wrong(f"for pixels of shape {shape} expected mean {true_mean:.4f}, got {mean:.4f}.")


q1 = Exercise(
    name="q1",
    prompt="Write norm_constants(pixels): given raw MNIST bytes (a uint8 tensor of any shape, "
           "values 0-255, like train.data), return (mean, std) of all the pixels on the [0, 1] "
           "scale that ToTensor gives, as two numbers.",
    checker=_norm_constants,
    hint_text="Turn the bytes into floats in [0, 1] with pixels.float() / 255, then take "
              ".mean() and .std() of the whole tensor (no dim), and .item() to get numbers.",
    solution_text="def norm_constants(pixels):\n"
                  "    x = pixels.float() / 255          # bytes -> [0, 1], a new tensor\n"
                  "    return x.mean().item(), x.std().item()\n"
                  "answer = norm_constants",
    kind="code",
    error_hints=(("Byte", "The pixels are bytes (uint8): convert them first, "
                          "pixels.float() / 255."),),
)


# --------------------------------------------------------------------------- predict

def _loader() -> Any:
    from torch.utils.data import DataLoader
    return DataLoader(load_mnist(train=False), batch_size=64)


def _batch_shape(answer: Any) -> None:
    if isinstance(answer, torch.Tensor):
        raise Wrong("give the shape as a tuple, e.g. (N, C, H, W), not a tensor.")
    try:
        got = tuple(int(v) for v in answer)
    except (TypeError, ValueError):
        raise Wrong(f"give the shape as a tuple of four numbers (N, C, H, W), not "
                    f"{answer!r}.") from None
    if got == (64, 1, 28, 28):
        return
    if got == (64, 28, 28):
        raise Wrong("close: the channel dimension stays, even with one channel: (N, C, H, W).")
    if got == (1, 28, 28):
        raise Wrong("that is one image; the DataLoader stacks 64 of them in front.")
    if len(got) == 4 and got[0] != 64:
        raise Wrong(f"the first number is the batch size: batch_size=64 gives 64, not {got[0]}.")
    raise Wrong(f"{got} is not it: 64 images, each (1, 28, 28), stacked along a new first "
                f"dimension.")


p3 = Exercise(
    name="p3",
    prompt="Predict: what shape does one batch of images from DataLoader(train, batch_size=64) "
           "have?",
    checker=_batch_shape,
    hint_text="One item is an image of shape (1, 28, 28); a batch stacks 64 of them along a new "
              "first dimension: (N, C, H, W).",
    solution_text="answer = (64, 1, 28, 28)",
    kind="predict",
    giveaways=("(64, 1, 28, 28)",),
    reference=lambda: tuple(next(iter(_loader()))[0].shape),
)


def _guess_mean(answer: Any) -> None:
    value = as_number(answer)
    if value > 1.5:
        raise Wrong(f"{value:g} is on the 0-255 scale; give it on the [0, 1] scale of ToTensor.")
    true = MNIST_MEAN
    if abs(value - true) <= 0.05:
        return
    if value > true:
        raise Wrong(f"{value:g} is too bright: most of an MNIST image is black background (0); "
                    f"only the thin stroke is bright.")
    raise Wrong(f"{value:g} is too dark: the strokes cover a fair part of the image, and they "
                f"are close to 1.")


p1 = Exercise(
    name="p1",
    prompt="Predict: the mean pixel value of the MNIST training images, on the [0, 1] scale "
           "(within 0.05)?",
    checker=_guess_mean,
    hint_text="Look at a digit: what share of its pixels is ink (about 1), and what share is "
              "background (0)?",
    solution_text="answer = featviz.MNIST_MEAN   # 0.1307: about a fifth of the pixels carry ink",
    kind="predict",
    giveaways=("0.1307",),
    reference=lambda: measured_constants()[0],
)


questionnaire = Questionnaire((
    ("What does one item of torchvision's MNIST dataset hold, and of what type and shape?",
     "A pair (image, label): with ToTensor, a float tensor of shape (1, 28, 28) in [0, 1], and "
     "an int from 0 to 9."),
    ("What does transforms.ToTensor do to a PIL image of bytes?",
     "It turns it into a float tensor (C, H, W) and divides the bytes 0-255 by 255, so the "
     "values lie in [0, 1]."),
    ("What does transforms.Normalize(mean, std) compute, and where do the two numbers come from?",
     "(x - mean) / std per channel; mean and std are measured on the training set (0.1307 and "
     "0.3081 for MNIST), never on the test set."),
    ("Why normalise the inputs at all?",
     "Inputs centred on 0 with a spread of about 1 keep the first layer's outputs and "
     "gradients at a sensible scale, so training is faster and more stable."),
    ("What shape does a DataLoader batch of MNIST images have, and what does each dimension "
     "mean?",
     "(N, C, H, W) = (batch size, channels, height, width), e.g. (64, 1, 28, 28)."),
    ("Why look at the data (images, class counts, class averages) before training?",
     "To catch wrong labels, unbalanced classes, odd preprocessing or corrupt files before they "
     "become a mysteriously bad model."),
))

reading = _reading(
    ("lecun1998", "the paper behind MNIST and LeNet-5: how the digits were collected, "
                  "size-normalised and centred (section III)."),
)
