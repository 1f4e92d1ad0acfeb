"""What capturing every conv layer costs: featviz next to a plain forward pass and its peers.

Two cases, each timed in this one process, methods interleaved round by round
(so that a noisy machine slows all of them alike):

* SimpleCNN on a batch of 256 MNIST test digits (the course's model);
* ResNet-18 (torchvision, random weights) on a batch of 16 images of 3x224x224.

Methods, all in eval mode under ``torch.no_grad()``, each returning every conv
layer's output:

* plain forward pass (the baseline, captures nothing);
* ``featviz.capture(model, nn.Conv2d)`` (every output copied in the hook);
* ``featviz.capture(model, nn.Conv2d, reduce="max")``: each channel's maximum and
  its position computed in the hook, as a dataset scan uses it;
* torchvision's ``create_feature_extractor`` (built once, outside the timing),
  asked for the model's output as well so that it runs the whole network;
* Captum's ``LayerActivation``, one call (one forward pass) per layer, as its
  documentation shows it, and, for reference, with all layers in one call.

Run from the repository root::

    .venv/bin/python benchmarks/bench_capture.py            # about 2 minutes
    .venv/bin/python benchmarks/bench_capture.py --quick    # fewer rounds, no per-layer Captum on ResNet
    .venv/bin/python benchmarks/bench_capture.py --wall --threads 8   # on a quiet machine

By default the clock is the CPU time of this process with PyTorch on one
thread: on a shared machine, wall-clock time mostly measures the other
processes, while CPU time counts only the work done here. ``--wall`` times
wall-clock with ``--threads`` threads (default: PyTorch's own choice).

It prints the median and the minimum time per method and each median's ratio
to the plain forward pass. Captum is optional (``pip install captum``).
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Callable

os.environ.setdefault("FEATVIZ_OFFLINE", "1")

import torch  # noqa: E402
from torch import nn  # noqa: E402

import featviz  # noqa: E402

try:
    from captum.attr import LayerActivation
except ImportError:  # optional peer
    LayerActivation = None


def conv_names(model: nn.Module) -> list[str]:
    return [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]


class _TraceableSimpleCNN(featviz.SimpleCNN):
    """SimpleCNN without its input checks, which torch.fx's symbolic tracer cannot pass."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(self.relu1(self.conv1(x)))
        x = self.pool2(self.relu2(self.conv2(x)))
        x = self.relu3(self.fc1(self.flatten(x)))
        return self.fc3(self.relu4(self.fc2(x)))


def traceable(model: nn.Module) -> nn.Module:
    """``model``, or for a SimpleCNN that fx cannot trace, a traceable twin with its weights."""
    import torch.fx

    try:
        torch.fx.symbolic_trace(model)
        return model
    except TypeError:
        if not isinstance(model, featviz.SimpleCNN):
            raise
    twin = _TraceableSimpleCNN()
    twin.load_state_dict(model.state_dict())
    return twin.to(next(model.parameters()).device).eval()


def methods_for(model: nn.Module, x: torch.Tensor, captum_per_layer: bool) -> dict[str, Callable[[], object]]:
    from torchvision.models.feature_extraction import create_feature_extractor, get_graph_node_names

    names = conv_names(model)
    modules = dict(model.named_modules())

    def plain() -> object:
        return model(x)

    # on a GPU the peers keep their results there, so featviz does too
    to_cpu = x.device.type == "cpu"

    def featviz_capture() -> object:
        with featviz.capture(model, nn.Conv2d, to_cpu=to_cpu) as acts:
            model(x)
        return dict(acts)

    def featviz_reduced() -> object:
        with featviz.capture(model, nn.Conv2d, to_cpu=to_cpu, reduce="max") as acts:
            model(x)
        return dict(acts)

    # the extractor drops every node its outputs do not need; asking for the model's
    # output too makes it run the whole network, as the other methods do
    twin = traceable(model)
    last = get_graph_node_names(twin)[1][-1]
    extractor = create_feature_extractor(twin, return_nodes={**{n: n for n in names}, last: "output"})

    def torchvision_fx() -> object:
        return extractor(x)

    methods: dict[str, Callable[[], object]] = {
        "plain forward (baseline)": plain,
        "featviz.capture": featviz_capture,
        "featviz.capture, reduce='max'": featviz_reduced,
        "torchvision create_feature_extractor": torchvision_fx,
    }
    if LayerActivation is not None:
        per_layer = [LayerActivation(model, modules[n]) for n in names]
        together = LayerActivation(model, [modules[n] for n in names])

        def captum_each() -> object:
            return {n: la.attribute(x) for n, la in zip(names, per_layer)}

        def captum_together() -> object:
            return dict(zip(names, together.attribute(x)))

        if captum_per_layer:
            methods["Captum LayerActivation, one call per layer"] = captum_each
        methods["Captum LayerActivation, all layers in one call"] = captum_together
    return methods


def check_same(methods: dict[str, Callable[[], object]]) -> float:
    """Largest difference between featviz's and torchvision's conv outputs."""
    ours = methods["featviz.capture"]()
    theirs = methods["torchvision create_feature_extractor"]()
    return max(float((ours[k] - theirs[k]).abs().max()) for k in ours)


def run_case(title: str, model: nn.Module, x: torch.Tensor, rounds: int, slow_rounds: int,
             clock: Callable[[], float], reps: int = 1, captum_per_layer: bool = True) -> None:
    """Time every method ``rounds`` times (``reps`` calls per timing) and print the table."""
    model.eval()
    with torch.no_grad():
        methods = methods_for(model, x, captum_per_layer)
        diff = check_same(methods)
        for fn in methods.values():  # warm-up: allocator, kernels, lazy imports
            fn()
        times: dict[str, list[float]] = {name: [] for name in methods}
        order = list(methods)
        slow = {name for name in methods if "one call per layer" in name}
        for r in range(rounds):
            # rotate the order so that no method always runs first
            for name in order[r % len(order):] + order[:r % len(order)]:
                if name in slow and r >= slow_rounds:
                    continue
                fn = methods[name]
                start = clock()
                for _ in range(reps):
                    fn()
                if x.device.type == "cuda":
                    torch.cuda.synchronize()
                times[name].append((clock() - start) / reps)
    base = statistics.median(times["plain forward (baseline)"])
    print(f"\n{title}")
    base_min = min(times["plain forward (baseline)"])
    print(f"{len(conv_names(model))} conv layers captured; {rounds} rounds of {reps} call(s) "
          f"({slow_rounds} for one-call-per-layer); largest |featviz - torchvision| = {diff:.1e}")
    width = max(len(n) for n in methods)
    print(f"{'method':<{width}}  {'median ms':>9}  {'min ms':>8}  {'median/plain':>12}  {'min/plain':>9}")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"{name:<{width}}  {med * 1e3:9.2f}  {min(ts) * 1e3:8.2f}  {med / base:12.3f}  "
              f"{min(ts) / base_min:9.3f}")
    ours = statistics.median(times["featviz.capture"])
    for peer in ("torchvision create_feature_extractor", "Captum LayerActivation, all layers in one call"):
        if peer in times:
            print(f"featviz.capture / {peer}: {ours / statistics.median(times[peer]):.3f}")
    if LayerActivation is None:
        print("(Captum is not installed: pip install captum to include it)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds (noisier)")
    parser.add_argument("--wall", action="store_true",
                        help="time wall-clock instead of this process's CPU time")
    parser.add_argument("--threads", type=int, default=None,
                        help="PyTorch threads (default 1 for CPU time, PyTorch's choice for --wall)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda (implies --wall)")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type != "cpu":
        args.wall = True
    small_rounds, big_rounds, slow_rounds = (10, 2, 1) if args.quick else (40, 5, 1)
    threads = args.threads or (None if args.wall else 1)
    if threads:
        torch.set_num_threads(threads)
    clock = time.perf_counter if args.wall else time.process_time

    import torchvision

    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, "
          f"featviz {featviz.__version__}"
          + (f", captum {__import__('captum').__version__}" if LayerActivation is not None else "")
          + f"; {torch.get_num_threads()} thread(s); clock: "
          + ("wall-clock" if args.wall else "CPU time of this process")
          + f"; device {device}"
          + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""))

    torch.manual_seed(0)
    images, _ = featviz.mnist_tensors(train=False)
    run_case("SimpleCNN, 256 MNIST digits (256x1x28x28)", featviz.SimpleCNN().to(device),
             images[:256].contiguous().to(device), small_rounds, small_rounds, clock, reps=3)

    torch.manual_seed(0)
    resnet = torchvision.models.resnet18(weights=None)
    run_case("ResNet-18 (random weights), 16 images (16x3x224x224)", resnet.to(device),
             torch.randn(16, 3, 224, 224).to(device), big_rounds, slow_rounds, clock,
             captum_per_layer=not args.quick)  # 20 passes of ResNet-18: half a minute on a CPU


if __name__ == "__main__":
    main()
