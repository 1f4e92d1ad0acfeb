"""The bundled assets (MNIST sample, checkpoints) and their sha256 manifest; the
chores of fetching files that never hang or leave a partial file behind; how
paths are written in messages."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import threading
import time
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

ASSETS = Path(__file__).resolve().parent / "assets"


def pretty_path(path: str | os.PathLike) -> str:
    """A path as a person would type it: the home folder as ``~``.

    A path with a space stays whole, since a quoted ``~`` does not expand in a
    shell. Symbolic links are kept (a virtual environment's ``python`` is a link).

    >>> pretty_path(Path.home() / "course" / "data")
    '~/course/data'
    >>> pretty_path("/opt/conda/bin/python")
    '/opt/conda/bin/python'
    """
    text = str(path)
    if " " in text:
        return text
    absolute = Path(os.path.abspath(path))
    for home in (Path.home(), Path.home().resolve()):
        try:
            return "~/" + absolute.relative_to(home).as_posix()
        except ValueError:
            continue
    return text


def staging_folder(parent: Path) -> Path:
    """A fresh hidden folder in ``parent`` to download into, so that a file is
    moved into place only when complete; stale ones over an hour old are
    removed. Raises OSError when ``parent`` cannot be written."""
    parent.mkdir(parents=True, exist_ok=True)
    for stale in parent.glob(".featviz-download-*"):
        if time.time() - stale.stat().st_mtime > 3600:
            shutil.rmtree(stale, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=".featviz-download-", dir=parent))


def run_bounded(work: Callable[[], None], timeout: float, name: str) -> str | None:
    """Run ``work()`` in a background thread for at most ``timeout`` seconds.

    Returns None when it finished, else why not, in a few words for a message:
    a download must never hang a lesson. Work still running at the deadline is
    left to finish on its own.

    >>> run_bounded(lambda: None, 1.0, "nothing") is None
    True
    >>> run_bounded(lambda: 1 / 0, 1.0, "a division")
    'the download failed (division by zero)'
    """
    outcome: dict[str, BaseException] = {}

    def guarded() -> None:
        try:
            work()
        except BaseException as exc:  # reported to the caller, never raised in the thread
            outcome["error"] = exc

    worker = threading.Thread(target=guarded, name=f"featviz-{name}", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        return f"the download did not finish within {timeout:g} s"
    if "error" in outcome:
        exc = outcome["error"]
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"the download failed ({first[:120]})"
    return None


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_manifest() -> dict[str, Any]:
    """The manifest of the bundled assets: sha256 sums, provenance, accuracies."""
    with open(ASSETS / "manifest.json", encoding="utf-8") as f:
        return json.load(f)


def verified_asset(name: str) -> Path:
    """Path of a bundled asset, after checking its sha256 against the manifest."""
    path = ASSETS / name
    stat = path.stat() if path.is_file() else None
    return _verified(name, stat.st_mtime_ns if stat else None, stat.st_size if stat else None)


@lru_cache(maxsize=None)
def _verified(name: str, mtime_ns: int | None, size: int | None) -> Path:
    # keyed on mtime and size so that a file changed on disk is checked again
    path = ASSETS / name
    entry = read_manifest()["files"].get(name)
    if entry is None:
        raise FileNotFoundError(f"{name!r} is not listed in {ASSETS / 'manifest.json'}.")
    if mtime_ns is None:
        raise FileNotFoundError(
            f"The bundled asset {path} is missing. Reinstall featviz "
            f"(pip install -e . in the course folder) to restore it."
        )
    digest = sha256_file(path)
    if digest != entry["sha256"]:
        raise ValueError(
            f"The bundled asset {path} is corrupt: its sha256 is {digest[:12]}..., "
            f"the manifest expects {entry['sha256'][:12]}.... Restore it with "
            f"`git checkout -- featviz/assets/{name}` or reinstall featviz."
        )
    return path


def record_assets(names: list[str], **sections: Any) -> dict[str, Any]:
    """Write the sha256 and size of the named assets (and any extra sections,
    such as provenance) into the manifest. Used by the scripts that make them."""
    path = ASSETS / "manifest.json"
    manifest = read_manifest() if path.exists() else {}
    files = manifest.setdefault("files", {})
    for name in names:
        files[name] = {"sha256": sha256_file(ASSETS / name), "bytes": (ASSETS / name).stat().st_size}
    manifest["files"] = dict(sorted(files.items()))
    manifest.update(sections)
    path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    _verified.cache_clear()
    return manifest
