"""Layer names: a name, glob, type or module of the model -> dotted names, with did-you-mean errors."""
from __future__ import annotations

import difflib
import fnmatch
import re
from collections.abc import Iterable
from typing import Any, Union

from torch import nn

#: What ``layers=`` accepts: a name, a glob, an ``nn.Module`` type or instance, or a list of them.
LayerSpec = Union[None, str, type, nn.Module, Iterable[Any]]
_MAX_LISTED = 80  # names listed in an error message before "... and N more"


def check_model(model: Any) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"expected a torch.nn.Module as the model, got {type(model).__name__}. Pass "
                        "the network itself, e.g. featviz.pretrained() or torchvision.models.resnet18().")


def is_leaf(module: nn.Module) -> bool:
    return next(module.children(), None) is None


def _unknown(model: nn.Module, name: str, names: list[str], *, pattern: bool) -> ValueError:
    msg = f"{type(model).__name__} has no layer named {name!r}."
    if pattern:
        msg = f"No layer of {type(model).__name__} matches the pattern {name!r}."
    else:  # a bare "conv2" given for a ResNet most likely means a block's "...conv2"
        same_tail = [n for n in names if n.rsplit(".", 1)[-1] == name.rsplit(".", 1)[-1]]
        guess = (difflib.get_close_matches(name, same_tail, n=1, cutoff=0.6) + same_tail
                 + difflib.get_close_matches(name, names, n=1, cutoff=0.5))
        msg += f" Did you mean {guess[0]!r}?" if guess else ""
    more = f", ... and {len(names) - _MAX_LISTED} more" if len(names) > _MAX_LISTED else ""
    return ValueError(f"{msg} Valid names: {', '.join(names[:_MAX_LISTED])}{more}. "
                      "featviz.layers(model) shows them with their types and output shapes.")


def _resolve_one(model: nn.Module, named: dict[str, nn.Module], item: Any) -> list[str]:
    names = [n for n in named if n]
    if isinstance(item, str):
        spec = re.sub(r"\[(\d+)\]", r".\1", item.strip())  # "layer1[0].conv1" -> "layer1.0.conv1"
        spec = spec[6:] if spec.startswith("model.") and spec[6:] in named else spec
        if spec in named:
            return [spec]
        call = re.fullmatch(r"(.*)#(\d+)", spec)
        if call and call.group(1) in named:
            raise ValueError(
                f"{item!r} names call {int(call.group(2)) + 1} of layer {call.group(1)!r} in one "
                f"pass, an output, not a layer: capture {call.group(1)!r} and read "
                f"acts[{item!r}]. A scan of it (top_activating, channel_stats) reads the first "
                "call, and early exit (stop_after=True) cannot be used for a layer run twice.")
        found = [n for n in names if fnmatch.fnmatchcase(n, spec)] if re.search(r"[*?\[]", spec) else None
        if not found:
            raise _unknown(model, item, names, pattern=found is not None)
        return found
    if isinstance(item, type) and issubclass(item, nn.Module):
        found = [n for n in names if isinstance(named[n], item)]
        if not found:
            present = sorted({type(named[n]).__name__ for n in names})
            raise ValueError(f"{type(model).__name__} has no layer of type {item.__name__}. "
                             f"Its layer types are: {', '.join(present)}.")
        return found
    if isinstance(item, nn.Module):
        for n, m in named.items():
            if m is item:
                return [n]
        raise ValueError(f"the {type(item).__name__} module given in layers= is not part of "
                         f"{type(model).__name__}. Pass a module of this model, or its name "
                         "(see featviz.layers(model)).")
    raise TypeError("layers= takes layer names (str), glob patterns such as 'layer*.conv2', "
                    "nn.Module types such as nn.Conv2d, or modules of the model; got "
                    f"{type(item).__name__}: {item!r}")


def resolve_layers(model: nn.Module, spec: LayerSpec = None) -> list[str]:
    """Dotted layer names for ``spec``: ``None`` (every leaf module), a name (``"layer1.0.conv2"``
    or ``"layer1[0].conv2"``), a glob (``"layer*.conv2"``), an ``nn.Module`` type, a module of
    the model, or a list of these; in the order asked for, without duplicates (``""`` is the
    model itself). An unknown name is a ``ValueError`` listing the valid names and the closest.

    >>> import featviz
    >>> resolve_layers(featviz.SimpleCNN(), ["conv*", nn.ReLU])
    ['conv1', 'conv2', 'relu1', 'relu2', 'relu3', 'relu4']
    """
    check_model(model)
    named = dict(model.named_modules())
    if spec is None:
        return [n for n, m in named.items() if n and is_leaf(m)] or [""]
    items: list[Any]
    if isinstance(spec, (str, type, nn.Module)) or not isinstance(spec, Iterable):
        items = [spec]  # one layer spec
    else:
        items = list(spec)
    if not items:
        raise ValueError("layers= is an empty list, so there is nothing to capture. Name the "
                         f"layers to record, e.g. {[n for n in named if n][:2]}, a type such as "
                         "nn.Conv2d, or leave layers=None for every leaf layer.")
    return list(dict.fromkeys(n for item in items for n in _resolve_one(model, named, item)))
