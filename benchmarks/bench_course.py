"""Execute every course notebook as a learner's "Run All" would, and measure each one.

    python benchmarks/bench_course.py                    # all of notebooks/
    python benchmarks/bench_course.py notebooks/04_feature_maps.ipynb --repeat 3

Each notebook runs in a fresh kernel (nbclient), offline, on the bundled MNIST
sample (``FEATVIZ_OFFLINE=1`` and an empty temporary ``FEATVIZ_DATA_ROOT``), the
way Binder or a workshop laptop without the full data would run it. The
notebooks on disk are not modified.

Per notebook it reports

* the kernel's start-up time and the time to run all cells (wall clock);
* the kernel's peak memory: the kernel process's peak resident set size,
  read from ``VmHWM`` in ``/proc/<kernel pid>/status`` after the last cell and
  before the kernel shuts down. That is the high-water mark of the whole run,
  including torch and matplotlib, and needs no code in the notebook. Where
  there is no ``/proc`` (macOS), the kernel is asked for
  ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` instead, the same number.
  Resident memory counts the pages of the shared libraries a process has
  touched: a CUDA build of torch adds several hundred MB of them at ``import
  torch`` that a CPU-only build (Binder's) does not have. So the table also
  gives the kernel's private (anonymous) memory after the last cell, ``RssAnon``:
  the tensors, arrays and figures the lesson itself holds.

For scale, the same process first measures the floor every notebook pays: a
fresh kernel that only imports torch, matplotlib and featviz (median of three).

Targets: the whole course under 3 minutes on a 2-core machine, and no kernel
over 1.5 GB (Binder gives 2 GB). A missed target is reported, not an error; the
exit status is 1 only when a notebook fails (an error in a cell, a timeout, a
kernel that died).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

ROOT = Path(__file__).resolve().parents[1]
COURSE_TARGET_S = 180.0
KERNEL_TARGET_MB = 1500.0
FLOOR_CODE = "%matplotlib inline\nimport torch, matplotlib.pyplot, featviz"


@dataclass
class Run:
    notebook: str
    cells: int
    start_s: float
    run_s: float
    peak_mb: float | None
    error: str = ""
    anon_mb: float | None = None

    @property
    def total_s(self) -> float:
        return self.start_s + self.run_s


def _kernel_pid(client: NotebookClient) -> int | None:
    provisioner = getattr(client.km, "provisioner", None)
    return getattr(provisioner, "pid", None) or getattr(getattr(provisioner, "process", None), "pid", None)


def _proc_status_mb(pid: int | None, field: str) -> float | None:
    """A memory field of /proc/<pid>/status (VmHWM, RssAnon...), in MB (10^6 bytes)."""
    if not pid:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024 / 1e6   # the value is in kB
    except OSError:
        pass
    return None


def _peak_rss_mb(client: NotebookClient) -> float | None:
    """Peak resident memory of the kernel process, in MB (10^6 bytes)."""
    peak = _proc_status_mb(_kernel_pid(client), "VmHWM")
    if peak is not None:
        return peak
    # no /proc: ask the kernel itself (ru_maxrss is in KiB on Linux, bytes on macOS)
    expr = ("__import__('resource').getrusage(__import__('resource').RUSAGE_SELF).ru_maxrss"
            " * (1 if __import__('sys').platform == 'darwin' else 1024)")
    try:
        msg_id = client.kc.execute("", silent=True, user_expressions={"peak": expr})
        reply = client.wait_for_reply(msg_id)
        value = reply["content"]["user_expressions"]["peak"]["data"]["text/plain"]
        return int(value) / 1e6
    except Exception:
        return None


def run_notebook(nb: nbformat.NotebookNode, name: str, cwd: Path, timeout: int) -> Run:
    """Execute ``nb`` in a fresh kernel; time it and read the kernel's peak memory."""
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(cwd)}})
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    start = time.perf_counter()
    error = ""
    run_s = 0.0
    peak = anon = None
    with client.setup_kernel():
        client.wait_for_reply(client.kc.kernel_info())
        started = time.perf_counter()
        try:
            for index, cell in enumerate(nb.cells):
                client.execute_cell(cell, index, execution_count=client.code_cells_executed + 1)
        except CellExecutionError as exc:
            cell = next((i for i, c in enumerate(code_cells, 1) if any(
                o.get("output_type") == "error" for o in c.get("outputs", []))), "?")
            error = f"code cell {cell}: {exc.ename}: {exc.evalue}"[:240]
        except CellTimeoutError:
            error = f"a cell ran past the {timeout} s timeout"
        except DeadKernelError:
            error = "the kernel died (out of memory?)"
        run_s = time.perf_counter() - started
        if "died" not in error:
            peak = _peak_rss_mb(client)
            anon = _proc_status_mb(_kernel_pid(client), "RssAnon")
    return Run(name, len(code_cells), started - start, run_s, peak, error, anon)


def floor(cwd: Path, repeats: int = 3) -> Run:
    """The fixed cost of a notebook: a fresh kernel that imports torch, matplotlib, featviz."""
    runs = []
    for _ in range(repeats):
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(FLOOR_CODE)])
        runs.append(run_notebook(nb, "(floor: imports only)", cwd, timeout=120))
    return Run(runs[0].notebook, 1, statistics.median(r.start_s for r in runs),
               statistics.median(r.run_s for r in runs),
               statistics.median(r.peak_mb for r in runs if r.peak_mb is not None)
               if any(r.peak_mb is not None for r in runs) else None,
               next((r.error for r in runs if r.error), ""),
               statistics.median(r.anon_mb for r in runs if r.anon_mb is not None)
               if any(r.anon_mb is not None for r in runs) else None)


def _mb(value: float | None) -> str:
    return f"{value:8.0f}" if value is not None else "       ?"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("notebooks", nargs="*", type=Path,
                    help="notebooks to run (default: every notebooks/NN_*.ipynb)")
    ap.add_argument("--repeat", type=int, default=1,
                    help="run each notebook this many times and report the medians")
    ap.add_argument("--timeout", type=int, default=300, help="seconds allowed per cell")
    ap.add_argument("--json", type=Path, help="also write the results to this file")
    args = ap.parse_args()
    paths = [p.resolve() for p in args.notebooks] or sorted(
        (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if not paths:
        print("no notebooks found", file=sys.stderr)
        return 2

    data_root = tempfile.TemporaryDirectory(prefix="featviz-bench-data-")
    os.environ["FEATVIZ_OFFLINE"] = "1"
    os.environ["FEATVIZ_DATA_ROOT"] = data_root.name
    cwd = paths[0].parent
    print(f"featviz course benchmark: {len(paths)} notebooks, fresh kernel each, bundled data, "
          f"{os.cpu_count()} CPU cores, {args.repeat} run(s) each\n")

    wall = time.perf_counter()
    base = floor(cwd)
    results: list[Run] = []
    for path in paths:
        runs = []
        for _ in range(max(1, args.repeat)):
            nb = nbformat.read(path, as_version=4)
            runs.append(run_notebook(nb, path.name, path.parent, args.timeout))
            if runs[-1].error:
                break
        failed = next((r for r in runs if r.error), None)
        peaks = [r.peak_mb for r in runs if r.peak_mb is not None]
        anons = [r.anon_mb for r in runs if r.anon_mb is not None]
        result = failed or Run(path.name, runs[0].cells,
                               statistics.median(r.start_s for r in runs),
                               statistics.median(r.run_s for r in runs),
                               max(peaks) if peaks else None, "",
                               max(anons) if anons else None)
        results.append(result)
        print(f"  {result.notebook}: {result.total_s:.1f} s"
              + (f"  FAILED: {result.error}" if result.error else ""), flush=True)
    wall = time.perf_counter() - wall
    data_root.cleanup()

    width = max(len(r.notebook) for r in [base, *results])
    head = (f"{'notebook':<{width}}  cells  start s  cells s  total s  peak MB  private MB"
            f"  x floor  status")
    print("\n" + head + "\n" + "-" * len(head))
    for r in [base, *results]:
        ratio = f"{r.total_s / base.total_s:7.1f}" if base.total_s > 0 else "      ?"
        status = "FAILED: " + r.error if r.error else (
            "over 1.5 GB" if r.peak_mb is not None and r.peak_mb > KERNEL_TARGET_MB else "ok")
        print(f"{r.notebook:<{width}}  {r.cells:5d}  {r.start_s:7.1f}  {r.run_s:7.1f}  "
              f"{r.total_s:7.1f}  {_mb(r.peak_mb)}    {_mb(r.anon_mb)}  {ratio}  {status}")
    course_s = sum(r.total_s for r in results)
    peak = max((r.peak_mb for r in results if r.peak_mb is not None), default=None)
    print("-" * len(head))
    print(f"{'course (sum)':<{width}}  {sum(r.cells for r in results):5d}  "
          f"{sum(r.start_s for r in results):7.1f}  {sum(r.run_s for r in results):7.1f}  "
          f"{course_s:7.1f}  {_mb(peak)}")
    print()
    failed = [r for r in results if r.error]
    print(f"whole course: {course_s:.1f} s of notebooks ({wall:.1f} s for this script, floor "
          f"included), target < {COURSE_TARGET_S:.0f} s: "
          f"{'met' if course_s < COURSE_TARGET_S else 'MISSED'}")
    print(f"largest kernel: {peak:.0f} MB, target < {KERNEL_TARGET_MB:.0f} MB: "
          f"{'met' if peak < KERNEL_TARGET_MB else 'MISSED'}" if peak is not None
          else "largest kernel: unknown (no peak memory could be read)")
    print(f"notebooks failed: {len(failed)}" + (
        " (" + ", ".join(r.notebook for r in failed) + ")" if failed else ""))
    if args.json:
        args.json.write_text(json.dumps({
            "floor": asdict(base), "notebooks": [asdict(r) for r in results],
            "course_s": course_s, "wall_s": wall, "largest_kernel_mb": peak,
            "cpu_count": os.cpu_count()}, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
