"""One ES module from a widget's front end and the small modules it imports.

anywidget loads a widget's front end as a single module from a string, so a
relative ``import { forward } from "./forward.js"`` cannot be resolved there. The
front ends are written as ordinary modules (Node's tests import each file
directly); :func:`bundle` inlines each imported sibling once, inside its own
function scope so that two modules may use the same private names, and binds the
names the importer asked for. No build step, no npm: plain text in, plain text out.
"""
from __future__ import annotations

import functools
import re
from pathlib import Path

__all__ = ["bundle"]

HERE = Path(__file__).parent
_IMPORT = re.compile(r'^import\s*\{([^}]*)\}\s*from\s*"\./([\w.-]+\.js)";?[ \t]*$', re.M)
_EXPORT_DECL = re.compile(r"^export\s+(?:async\s+)?(function\*?|const|let|class)\s+([A-Za-z_$][\w$]*)", re.M)
_EXPORT_LIST = re.compile(r"^export\s*\{([^}]*)\};?[ \t]*$", re.M)


def _names(text: str) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()]


def _as_scope(name: str, source: str) -> tuple[str, list[str]]:
    """``source`` (a module without a default export) as the body of a function that
    returns its exports, and the names it exports."""
    if re.search(r"^export\s+default\b", source, re.M):
        raise ValueError(f"{name}: a module that others import must not have a default export")
    exported = [m.group(2) for m in _EXPORT_DECL.finditer(source)]
    for m in _EXPORT_LIST.finditer(source):
        exported += _names(m.group(1))
    body = _EXPORT_LIST.sub("", _EXPORT_DECL.sub(lambda m: m.group(0)[len("export"):].lstrip(), source))
    return body, exported


@functools.lru_cache(maxsize=None)
def bundle(main: str, folder: Path = HERE) -> str:
    """The module ``folder/main`` with every ``./x.js`` it imports (and they import) inlined.

    >>> "function fmt" in bundle("style.js")
    True
    """
    done: dict[str, str] = {}      # module file -> the variable holding its exports
    parts: list[str] = []

    def inline(file: str, importer: str) -> str:
        if file in done:
            return done[file]
        path = folder / file
        if not path.is_file():
            raise FileNotFoundError(f"{importer} imports ./{file}, which is not in {folder}")
        source = _bind_imports(path.read_text(encoding="utf-8"), file)
        body, exported = _as_scope(file, source)
        var = "__featviz_" + re.sub(r"\W", "_", file[:-3])
        parts.append(f"// ---- {file}\nconst {var} = (() => {{\n{body}\nreturn {{ {', '.join(exported)} }};\n}})();\n")
        done[file] = var
        return var

    def _bind_imports(source: str, file: str) -> str:
        def replace(m: re.Match) -> str:
            var = inline(m.group(2), file)
            wanted = []
            for name in _names(m.group(1)):
                src, _, alias = (p.strip() for p in name.partition(" as "))
                wanted.append(f"{src}: {alias}" if alias else src)
            return f"const {{ {', '.join(wanted)} }} = {var};"
        return _IMPORT.sub(replace, source)

    top = _bind_imports((folder / main).read_text(encoding="utf-8"), main)
    return "".join(parts) + f"// ---- {main}\n" + top
