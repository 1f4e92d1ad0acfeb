"""Build the course as a static website from the committed notebooks (nothing is executed).

    python scripts/build_site.py site                  # into site/ (the default)
    python scripts/build_site.py site --exports site_exports --notebooks notebooks
    python -m http.server -d site                      # preview at http://localhost:8000

One page per lesson (``00_start_here.html`` ...), an ``index.html`` with the course map (the
lessons' titles and times, read from each notebook's first markdown cell), one ``site.css``
and the figures as files in ``img/``. Links are relative, so the folder works from
``python -m http.server``, from ``file://`` and from GitHub Pages under a sub-path, and a page
asks nothing of any other origin: no CDN, no web fonts, no MathJax, no require.js, no badge
images (the Binder and Colab badges become text buttons with the same targets). Plain
``<a href>`` links to other sites (Binder, Colab, GitHub, papers) stay: they are navigation,
not requests.

What a page shows: every markdown cell; every code cell with its source (highlighted by
Pygments, leading ``# NBVAL_...`` test markers dropped) and its saved outputs, except the
lessons' check cells (code tagged ``check``, or whose source starts with ``# check:``: the
asserts that hold the text to the figures; lessons 00-03 tag them ``hide-input``). Math: the
course has one display formula, and no math renderer is loaded (it would be a CDN or a large
vendored bundle), so TeX is shown as its source, in a box marked "TeX".

Figures are written as files (``img/<hash>.png``), not as ``data:`` URIs: base64 makes them a
third larger, a page of data URIs must be downloaded whole before it shows, and files load
lazily as the reader scrolls, are cached between pages and deduplicated by their hash.

Live widgets (the hook). The k-th code cell of a lesson whose outputs hold a widget view
(``application/vnd.jupyter.widget-view+json``; k = 1, 2, ... in the order of the notebook,
:func:`widget_cells` lists them) is looked up as ``<exports>/<lesson stem>-<k>.html``, e.g.
``site_exports/05_explorer-1.html``: a self-contained HTML file written by
``widget.save_html(path)``. When it exists it is copied next to the page and shown live in an
``<iframe sandbox="allow-scripts" loading="lazy">`` that a few lines of inline JavaScript put
in the page; the output's still (its image, or its text when it has none) sits in a
``<noscript>``, so without JavaScript the still shows and with it the live widget does. The
export must load nothing from another origin (the build stops if its tags do). Its height:
``<meta name="featviz-height" content="720">`` in the export, else 760 px; a running export may
also resize its frame with ``parent.postMessage({featviz: "height", height: px}, "*")``, px
being the height of its content (the frame's border is added here); featviz's saved pages
post theirs whenever it changes.
Without an export the still shows with a one-line caption: the live widget needs a kernel
(Binder or Colab).

Tool: nbconvert's Python pieces (nbformat, its mistune markdown renderer, ansi2html) and
Pygments, with small Jinja templates and a CSS file of our own (``scripts/site_theme/``):
already the course's tools, offline, no node. nbconvert's stock HTML templates are not used:
they load MathJax, require.js and mermaid from CDNs and bring ~250 kB of JupyterLab CSS.
MyST / Jupyter Book 2 needs node and npm packages; Sphinx + myst-nb brings a theme, its
assets and a build cache, for nine pages. The builder does not import featviz: it needs only
nbformat, nbconvert (with its jinja2) and Pygments.
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import html
import posixpath
import re
import shutil
import sys
import warnings
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import jinja2
import nbformat
from nbconvert.filters.ansi import ansi2html
from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer, get_lexer_by_name
from pygments.util import ClassNotFound

ROOT = Path(__file__).resolve().parents[1]
THEME = Path(__file__).resolve().parent / "site_theme"   # the pages' templates and CSS
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
MARKER = ".featviz-site"          # marks a folder this script built, so a rebuild may clear it
DEFAULT_TITLE = "featviz · how a convolutional network sees"
DEFAULT_WIDGET_HEIGHT = 760
PYGMENTS_STYLE = "default"
# what an output shows, best first (as Jupyter chooses); widget views are handled apart
MIME_ORDER = ("text/html", "image/svg+xml", "image/png", "image/jpeg", "text/markdown",
              "text/latex", "text/plain")
IMAGE_EXT = {"image/png": "png", "image/jpeg": "jpg", "image/svg+xml": "svg", "image/gif": "gif"}


# --------------------------------------------------------------------------- the lessons

@dataclass
class Lesson:
    path: Path
    nb: nbformat.NotebookNode
    number: str              # "05"
    name: str                # "The explorer: move the sliders, watch the network see"
    time: str                # "35 minutes"
    minutes: int | None
    links: dict[str, str]    # "binder", "colab", "github": this notebook elsewhere

    @property
    def stem(self) -> str:
        return self.path.stem

    @property
    def page(self) -> str:
        return self.stem + ".html"

    @property
    def title(self) -> str:
        return f"{self.number} · {self.name}"

    @property
    def short_name(self) -> str:
        return self.name.split(":")[0]

    @property
    def short(self) -> str:
        return f"{self.number} · {self.short_name}"

    @property
    def time_short(self) -> str:
        """"25 min" for "25 minutes (the training itself ...)"."""
        return re.sub(r"(\d+) minutes?\b", r"\1 min", self.time.split(" (")[0])


def read_lesson(path: Path) -> Lesson:
    """A lesson, with its title, time and outside links read from its first markdown cell."""
    nb = nbformat.read(path, as_version=4)
    first = next((c.source for c in nb.cells if c.cell_type == "markdown"), "")
    heading = re.search(r"^#\s+(.+?)\s*$", first, re.M)
    text = heading.group(1) if heading else path.stem.replace("_", " ")
    m = re.match(r"(\d+)\s*[·:.-]\s*(.+)", text)
    number, name = (m.group(1), m.group(2)) if m else (path.stem.split("_")[0], text)
    t = re.search(r"\*\*Estimated time:?\*\*:?\s*([^\n]+)", first)
    time = t.group(1).strip() if t else ""
    minutes = re.match(r"(\d+)\s*min", time)
    return Lesson(path, nb, number, name, time, int(minutes.group(1)) if minutes else None,
                  outside_links(first))


def outside_links(markdown: str) -> dict[str, str]:
    """The notebook's Binder and Colab links (from its badges) and its GitHub page."""
    found: dict[str, str] = {}
    pictures = set(re.findall(r"!\[[^\]]*\]\(([^)\s]+)", markdown))   # the badges' images
    for url in re.findall(r"\]\((https://[^)\s]+)\)", markdown):
        if url in pictures:
            continue
        host = urlsplit(url).netloc
        if host == "mybinder.org":
            found.setdefault("binder", url)
        elif host == "colab.research.google.com":
            found.setdefault("colab", url)
            gh = re.match(r"https://colab\.research\.google\.com/github/(.+)", url)
            if gh:
                found.setdefault("github", "https://github.com/" + gh.group(1))
    return found


def is_check_cell(cell: nbformat.NotebookNode) -> bool:
    """A lesson's collapsed check cell: code tagged ``check``, or starting with ``# check:``."""
    return cell.cell_type == "code" and (
        "check" in cell.metadata.get("tags", []) or cell.source.lstrip().startswith("# check:"))


def widget_cells(nb: nbformat.NotebookNode) -> list[int]:
    """Indices (in ``nb.cells``) of the code cells whose outputs hold a widget view; the
    k-th of them (from 1) is exported as ``<lesson stem>-<k>.html``."""
    return [i for i, c in enumerate(nb.cells) if c.cell_type == "code"
            and any(WIDGET_VIEW in o.get("data", {}) for o in c.get("outputs", []))]


def _minutes(total: int) -> str:
    hours, rest = divmod(total, 60)
    return f"{hours} h {rest:02d} min" if hours else f"{rest} min"


# --------------------------------------------------------------------------- files in the site

class Assets:
    """Files written into the site's ``img/`` folder, named by their content's hash."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.sizes: dict[str, int] = {}

    def add(self, data: bytes, ext: str) -> str:
        name = f"img/{hashlib.sha256(data).hexdigest()[:16]}.{ext}"
        if name not in self.sizes:
            (self.out / "img").mkdir(exist_ok=True)
            (self.out / name).write_bytes(data)
            self.sizes[name] = len(data)
        return name


def _png_size(data: bytes) -> tuple[int, int] | None:
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    return None


def _is_outside(url: str) -> bool:
    """True for a URL that leaves the site (a scheme other than data:, or //host)."""
    url = url.strip()
    return url.startswith("//") or bool(re.match(r"[a-zA-Z][a-zA-Z0-9+.-]*:", url)) \
        and not url.lower().startswith(("data:", "mailto:"))


class _Refs(HTMLParser):
    """Every URL a page refers to: (tag, attribute, url), CSS url() and @import included."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.refs: list[tuple[str, str, str]] = []
        self._style = False

    def handle_starttag(self, tag, attrs):
        self._style = tag == "style"
        for key, value in attrs:
            if value is None:
                continue
            if key in ("src", "href", "data", "poster", "xlink:href", "action"):
                self.refs.append((tag, key, value))
            elif key == "srcset":
                self.refs += [(tag, key, part.split()[0]) for part in value.split(",") if part.strip()]
            elif key == "style":
                self.refs += [(tag, "style", u) for u in css_urls(value)]

    def handle_endtag(self, tag):
        self._style = False

    def handle_data(self, data):
        if self._style:
            self.refs += [("style", "css", u) for u in css_urls(data)]


def css_urls(css: str) -> list[str]:
    """The URLs in a piece of CSS: ``url(...)`` and ``@import "..."``."""
    urls = [m.group(2) for m in re.finditer(r"url\(\s*(['\"]?)(.*?)\1\s*\)", css, re.I | re.S)]
    return urls + re.findall(r"@import\s+['\"]([^'\"]+)['\"]", css, re.I)


def page_refs(text: str) -> list[tuple[str, str, str]]:
    parser = _Refs()
    parser.feed(text)
    parser.close()
    return parser.refs


def outside_requests(text: str) -> list[str]:
    """What a page would fetch from another origin: anything but a plain link (``<a href>``)."""
    return [f"<{tag} {key}={url!r}>" for tag, key, url in page_refs(text)
            if _is_outside(url) and not (tag == "a" and key == "href")]


# --------------------------------------------------------------------------- markdown

class SiteRenderer(IPythonRenderer):
    """nbconvert's markdown renderer, made for the site: lesson links go to the pages, other
    relative links to GitHub, outside images become text badges, TeX stays TeX."""

    def __init__(self, ctx: "Context", attachments: dict | None = None) -> None:
        super().__init__(escape=False, attachments=attachments or {})
        self.ctx = ctx

    def link(self, text: str, url: str, title: str | None = None) -> str:
        return super().link(text, self.ctx.site_url(url), title)

    def image(self, text: str, url: str, title: str | None = None) -> str:
        if _is_outside(url):  # a badge: keep its words, never fetch the picture
            host = urlsplit(url).netloc.split(".")[-2] if "." in urlsplit(url).netloc else "link"
            return f'<span class="badge badge-{html.escape(host)}">{html.escape(text or url)}</span>'
        if url.startswith("attachment:"):
            bundle = self.attachments.get(url[len("attachment:"):], {})
            mime = next((m for m in IMAGE_EXT if m in bundle), None)
            if mime is None:
                raise ValueError(f"{self.ctx.where}: markdown image {url!r} has no attachment")
            url = self.ctx.assets.add(_decode(bundle[mime], mime), IMAGE_EXT[mime])
        else:
            url = self.ctx.local_file(url)
        return super().image(text, url, title).replace("<img ", '<img loading="lazy" ', 1)

    def block_math(self, body: str) -> str:
        return f'<div class="math" title="TeX">{self.escape_html(body.strip())}</div>\n'

    def inline_math(self, body: str) -> str:
        return f'<code class="math" title="TeX">{self.escape_html(body)}</code>'

    def latex_environment(self, name: str, body: str) -> str:
        return self.block_math(f"\\begin{{{name}}}{body}\\end{{{name}}}")


def _decode(value, mime: str) -> bytes:
    text = value if isinstance(value, str) else "".join(value)
    return text.encode() if mime == "image/svg+xml" else base64.b64decode(text)


# --------------------------------------------------------------------------- one page

@dataclass
class Context:
    """What rendering one lesson needs: the site, its lessons and where in them we are."""
    out: Path
    lesson: Lesson
    lessons: dict[str, Lesson]   # by notebook file name
    assets: Assets
    exports: Path
    where: str = ""
    live: list[str] = field(default_factory=list)

    def site_url(self, url: str) -> str:
        """A link from the notebook as a link from the page."""
        if _is_outside(url) or url.startswith(("#", "mailto:")):
            return url
        path, _, fragment = url.partition("#")
        name = posixpath.basename(path)
        if posixpath.dirname(path) in ("", ".") and name in self.lessons:
            return self.lessons[name].page + (f"#{fragment}" if fragment else "")
        github = self.lesson.links.get("github")
        if github:   # another file of the repository: its page on GitHub
            return urljoin(github, url)
        warnings.warn(f"{self.where}: link {url!r} leads nowhere on the site", stacklevel=2)
        return url

    def local_file(self, url: str) -> str:
        """A picture the markdown takes from beside the notebook, copied into the site."""
        source = (self.lesson.path.parent / url).resolve()
        if not source.is_file():
            raise ValueError(f"{self.where}: markdown image {url!r} is not a file beside the notebook")
        return self.assets.add(source.read_bytes(), source.suffix.lstrip(".").lower() or "bin")

    def markdown(self, source: str, attachments: dict | None = None) -> str:
        return MarkdownWithMath(renderer=SiteRenderer(self, attachments)).render(source)


def _lexer(nb: nbformat.NotebookNode):
    name = nb.metadata.get("language_info", {}).get("name", "python")
    if name == "python":
        return PythonLexer()
    try:
        return get_lexer_by_name(name)
    except ClassNotFound:
        return PythonLexer()


def displayed_source(cell: nbformat.NotebookNode) -> str:
    """A code cell's source as the page shows it: without nbval's marker lines."""
    lines = [line for line in cell.source.splitlines() if not re.fullmatch(r"\s*#\s*NBVAL_\w+\s*", line)]
    return "\n".join(lines).strip("\n")


def render_data(data: dict, metadata: dict, ctx: Context) -> str:
    """One display_data / execute_result bundle, by the first kind in MIME_ORDER it has."""
    mime = next((m for m in MIME_ORDER if m in data), None)
    if mime is None:
        return ""
    value = data[mime] if isinstance(data[mime], str) else "".join(data[mime])
    if mime == "text/html":
        return f'<div class="output html">{value}</div>'
    if mime.startswith("image/"):
        raw = _decode(value, mime)
        src = ctx.assets.add(raw, IMAGE_EXT[mime])
        meta = metadata.get(mime, {}) if isinstance(metadata.get(mime), dict) else {}
        size = (meta.get("width"), meta.get("height")) if meta.get("width") else _png_size(raw)
        dims = f' width="{size[0]}" height="{size[1]}"' if size and size[0] and size[1] else ""
        return (f'<div class="output image"><img src="{src}"{dims} alt="figure made by the code '
                f'above" loading="lazy" decoding="async"></div>')
    if mime == "text/markdown":
        return f'<div class="output markdown">{ctx.markdown(value)}</div>'
    if mime == "text/latex":
        return f'<div class="output math" title="TeX">{html.escape(value)}</div>'
    return f'<pre class="output text">{ansi2html(value)}</pre>'


def render_output(out: nbformat.NotebookNode, ctx: Context) -> str:
    if out.output_type == "stream":
        kind = "stderr" if out.get("name") == "stderr" else "stdout"
        return f'<pre class="output {kind}">{ansi2html(out.text)}</pre>' if out.text.strip() else ""
    if out.output_type == "error":
        warnings.warn(f"{ctx.where}: the saved output is an error ({out.ename})", stacklevel=2)
        return f'<pre class="output error">{ansi2html(chr(10).join(out.traceback))}</pre>'
    return render_data(out.get("data", {}), out.get("metadata", {}), ctx)


def live_export(ctx: Context, k: int) -> tuple[str, int] | None:
    """Copy the k-th widget export of the lesson into the site: (file name, height), or None."""
    source = ctx.exports / f"{ctx.lesson.stem}-{k}.html"
    if not source.is_file():
        return None
    text = source.read_text(encoding="utf-8")
    outside = outside_requests(text)
    if outside:
        raise ValueError(f"{source} loads from outside the site ({', '.join(outside[:3])}); "
                         f"the export must be self-contained (inline its scripts and styles)")
    height = re.search(r"<meta\s+name=[\"']featviz-height[\"']\s+content=[\"'](\d+)", text, re.I)
    shutil.copyfile(source, ctx.out / source.name)
    return source.name, int(height.group(1)) if height else DEFAULT_WIDGET_HEIGHT


def render_widget_outputs(cell: nbformat.NotebookNode, k: int, ctx: Context) -> str:
    """The outputs of the k-th widget cell: the live export in place of its first widget
    output (the still in <noscript>), or the stills with a caption that a kernel is needed."""
    export = live_export(ctx, k)
    parts: list[str] = []
    last_widget = max(i for i, o in enumerate(cell.outputs) if WIDGET_VIEW in o.get("data", {}))
    placed = False
    for i, out in enumerate(cell.outputs):
        data = out.get("data", {})
        if WIDGET_VIEW not in data:
            parts.append(render_output(out, ctx))
            continue
        still = render_data({m: v for m, v in data.items() if m != WIDGET_VIEW},
                            out.get("metadata", {}), ctx)
        if export and not placed:
            placed = True
            name, height = export
            ctx.live.append(name)
            parts.append(
                f'<figure class="widget"><div class="live" data-src="{name}" data-height="{height}" '
                f'data-title="{html.escape(ctx.lesson.short)}: live widget {k}"></div>'
                f'<noscript><div class="still">{still}</div><figcaption>{_still_words(still)} '
                f'of a live widget, which needs JavaScript.</figcaption></noscript></figure>')
        else:
            parts.append(f'<div class="still">{still}</div>')
        if i == last_widget and not export:
            parts.append(kernel_caption(ctx.lesson, _still_words(still)))
    return "\n".join(p for p in parts if p)


def _still_words(still: str) -> str:
    return "A still picture" if "<img " in still else "The saved text"


def kernel_caption(lesson: Lesson, what: str) -> str:
    """The line under a widget shown without its live version."""
    where = [f'<a href="{html.escape(lesson.links[k])}">{label}</a>'
             for k, label in (("binder", "Binder"), ("colab", "Colab")) if k in lesson.links]
    run = f"open this lesson on {' or '.join(where)}" if where else "run the notebook in Jupyter"
    return f'<p class="widget-note">{what} of a live widget, which needs a Python kernel: {run}.</p>'


def render_cells(ctx: Context) -> list[str]:
    nb, lexer = ctx.lesson.nb, _lexer(ctx.lesson.nb)
    formatter = HtmlFormatter(cssclass="highlight")
    widget_k = {i: k for k, i in enumerate(widget_cells(nb), start=1)}
    blocks = []
    for i, cell in enumerate(nb.cells):
        ctx.where = f"{ctx.lesson.path.name} cell {i}"
        tags = "".join(f" tag-{re.sub(r'[^a-z0-9-]', '', t.lower())}" for t in cell.metadata.get("tags", []))
        if cell.cell_type == "markdown":
            body = ctx.markdown(cell.source, cell.get("attachments"))
            blocks.append(f'<section class="cell md{tags}">{body}</section>')
        elif cell.cell_type == "code" and not is_check_cell(cell):
            source = displayed_source(cell)
            code = highlight(source, lexer, formatter) if source else ""
            if i in widget_k:
                outs = render_widget_outputs(cell, widget_k[i], ctx)
            else:
                outs = "\n".join(filter(None, (render_output(o, ctx) for o in cell.get("outputs", []))))
            if code or outs:
                outputs = f'<div class="outputs">{outs}</div>' if outs else ""
                blocks.append(f'<div class="cell code{tags}">{code}{outputs}</div>')
    return blocks


# --------------------------------------------------------------------------- the site

def _env() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(THEME), autoescape=True,
                              trim_blocks=False, undefined=jinja2.StrictUndefined)


def stylesheet() -> str:
    css = (THEME / "site.css").read_text(encoding="utf-8")
    pyg = HtmlFormatter(style=PYGMENTS_STYLE, cssclass="highlight").get_style_defs(".highlight")
    return css + "\n/* syntax highlighting: Pygments' " + PYGMENTS_STYLE + " style */\n" + pyg + \
        "\n.highlight .err { border: none; background: none; }\n"


def _intro(lesson: Lesson, ctx: Context) -> str:
    """The first paragraph of prose in the title cell of lesson 00, as HTML (no <p>)."""
    first = next((c.source for c in lesson.nb.cells if c.cell_type == "markdown"), "")
    for block in re.split(r"\n\s*\n", first):
        if not re.match(r"\s*(#|\[!\[|\*\*|-|&nbsp;|←|\d+\.)", block):
            return re.sub(r"^<p>|</p>\s*$", "", ctx.markdown(block).strip())
    return ""


def _prepare(out: Path) -> None:
    """An empty folder to build into; one built before (it holds MARKER) is cleared."""
    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).is_file():
            raise SystemExit(f"{out} is not empty and was not built by this script: "
                             f"give an empty or new folder")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("built by scripts/build_site.py; a rebuild deletes this folder\n")


@dataclass
class Built:
    """What a build made: pages with their sizes in bytes (the HTML, and the figures they show)."""
    out: Path
    pages: dict[str, int]
    images: dict[str, int]          # the figures each page shows, in bytes
    live: dict[str, list[str]]      # the exports each page embeds

    def total(self) -> int:
        return sum(f.stat().st_size for f in self.out.rglob("*") if f.is_file())


def build(out: Path, notebooks: Path = ROOT / "notebooks", exports: Path = ROOT / "site_exports",
          title: str = DEFAULT_TITLE) -> Built:
    """Build the site from ``notebooks/[0-9][0-9]_*.ipynb`` into ``out``; see the module doc."""
    paths = sorted(Path(notebooks).glob("[0-9][0-9]_*.ipynb"))
    if not paths:
        raise SystemExit(f"no lesson notebooks (NN_name.ipynb) in {notebooks}")
    out = Path(out)
    _prepare(out)
    lessons = [read_lesson(p) for p in paths]
    by_name = {lesson.path.name: lesson for lesson in lessons}
    assets, env = Assets(out), _env()
    (out / "site.css").write_text(stylesheet(), encoding="utf-8")
    pages, images, live = {}, {}, {}
    for n, lesson in enumerate(lessons):
        ctx = Context(out, lesson, by_name, assets, Path(exports))
        blocks = render_cells(ctx)
        text = env.get_template("lesson.html").render(
            page_title=f"{lesson.title} — {title}", site_title=title, lesson=lesson, blocks=blocks,
            prev=lessons[n - 1] if n else None, next=lessons[n + 1] if n + 1 < len(lessons) else None,
            live=ctx.live)
        _write_page(out / lesson.page, text)
        used = set(re.findall(r'src="(img/[^"]+)"', text))
        pages[lesson.page], live[lesson.page] = len(text.encode()), ctx.live
        images[lesson.page] = sum(assets.sizes[u] for u in used)
    pages["index.html"], images["index.html"], live["index.html"] = _index(out, lessons, env, title), 0, []
    _unused_exports(Path(exports), [name for names in live.values() for name in names])
    return Built(out, pages, images, live)


def _index(out: Path, lessons: list[Lesson], env: jinja2.Environment, title: str) -> int:
    """Write the course map; returns its size in bytes."""
    start = lessons[0]
    ctx = Context(out, start, {lesson.path.name: lesson for lesson in lessons}, Assets(out), out,
                  where="index")
    minutes = [lesson.minutes for lesson in lessons if lesson.minutes is not None]
    total = _minutes(sum(minutes)) if len(minutes) == len(lessons) else ""
    text = env.get_template("index.html").render(
        page_title=title, site_title=title, lessons=lessons, start=start, intro=_intro(start, ctx),
        repo=_repo(start), total=total)
    _write_page(out / "index.html", text)
    return len(text.encode())


def _unused_exports(exports: Path, used: list[str]) -> None:
    """Say so when an export matches no widget cell (the notebook changed since it was made)."""
    stale = sorted(p.name for p in exports.glob("[0-9][0-9]_*-*.html") if p.name not in used) \
        if exports.is_dir() else []
    if stale:
        warnings.warn(f"exports that match no widget cell of their lesson: {', '.join(stale)}", stacklevel=3)


def _repo(lesson: Lesson) -> str:
    gh = re.match(r"(https://github\.com/[^/]+/[^/]+)", lesson.links.get("github", ""))
    return gh.group(1) if gh else ""


def _write_page(path: Path, text: str) -> None:
    outside = outside_requests(text)
    if outside:
        raise ValueError(f"{path.name} would load from outside the site: {', '.join(outside[:5])}")
    path.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", nargs="?", type=Path, default=Path("site"),
                    help="the folder to build into (default: site)")
    ap.add_argument("--notebooks", type=Path, default=ROOT / "notebooks",
                    help="the folder of the lesson notebooks (default: the course's)")
    ap.add_argument("--exports", type=Path, default=ROOT / "site_exports",
                    help="the folder of the widgets' HTML exports, <lesson>-<k>.html "
                         "(default: site_exports/ in the course; missing is fine)")
    ap.add_argument("--title", default=DEFAULT_TITLE)
    args = ap.parse_args(argv)
    built = build(args.out, args.notebooks, args.exports, args.title)
    for page, size in built.pages.items():
        extra = f", {len(built.live[page])} live widget(s)" if built.live[page] else ""
        print(f"{page:28s} {size / 1024:7.0f} kB + figures {built.images[page] / 1024:6.0f} kB{extra}")
    print(f"{len(built.pages)} pages in {args.out}/, {built.total() / 2**20:.1f} MB in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
