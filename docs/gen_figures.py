"""mkdocs hook: draw the docs' figures during the build, pull in the bench results, and keep
every page reachable from the nav.

Registered in mkdocs.yml under ``hooks:``. Nothing is written into ``docs/``: the figures are
added to the build as generated files, so the site always shows the current library's output.

- ``figures/caterpillar.png`` and ``figures/residuals.png``: the cbpp model's caterpillar plot
  and DHARMa-style residual figure (``GLMMResult.plot_caterpillar()`` / ``plot_residuals()``);
  ``figures/caterpillar_sleepstudy.png``: a random-slope model's caterpillar plot;
  ``figures/workflow_emmeans.png`` / ``workflow_residuals.png``: the Owls model of workflow.md.
- ``figures/bench_chart.png``: copied from ``bench/results/chart.png`` when the bench has
  committed one.

A page asks for them with markers that this hook replaces:

- ``<!-- figure: NAME | alt text -->`` becomes ``![alt text](figures/NAME.png)``, or a note
  saying the figure needs matplotlib (the ``plot`` extra) when it could not be drawn;
- ``<!-- bench-results -->`` becomes the text of ``bench/results/results.md`` plus the chart, or a
  note that no results are committed yet.

A page added to ``docs/`` but not yet to ``nav:`` in mkdocs.yml is appended under "More" (with
its first heading as title), so a new page never builds unreachable; list it in mkdocs.yml.

Example
-------
>>> figs = make_figures()            # doctest: +SKIP
>>> sorted(figs)                     # doctest: +SKIP
['caterpillar.png', 'caterpillar_sleepstudy.png', 'residuals.png']
"""

from __future__ import annotations

import io
import logging
import re
from pathlib import Path

log = logging.getLogger("mkdocs.hooks.gen_figures")

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench" / "results"

_FIGURE = re.compile(r"<!--\s*figure:\s*(?P<name>[\w-]+)\s*(?:\|\s*(?P<alt>[^>]*?))?\s*-->")
_BENCH = re.compile(r"<!--\s*bench-results\s*-->")

_made: dict[str, bytes] = {}


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


def make_figures() -> dict[str, bytes]:
    """Fit the docs' example models and draw their figures; {file name: PNG bytes}.

    Returns an empty dict when matplotlib is not installed (the ``plot`` extra).
    """
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return {}
    import interlace

    cbpp = interlace.datasets.load("cbpp")
    m = interlace.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp,
                        family="binomial")
    sleep = interlace.datasets.load("sleepstudy")
    s = interlace.glmer("Reaction ~ Days + (Days | Subject)", sleep, family="gaussian")
    owls = interlace.datasets.load("owls")
    o = interlace.glmer("SiblingNegotiation ~ FoodTreatment * SexParent + offset(logBroodSize) + (1 | Nest)",
                        owls, family="poisson")
    return {
        "workflow_emmeans.png": _png(o.emmeans("~ FoodTreatment | SexParent", type="response").plot()),
        "workflow_residuals.png": _png(o.plot_residuals(nsim=250, seed=1)),
        "caterpillar.png": _png(m.plot_caterpillar()),
        "residuals.png": _png(m.plot_residuals(nsim=250, seed=1)),
        "caterpillar_sleepstudy.png": _png(s.plot_caterpillar()),
    }


def _bench_chart() -> bytes | None:
    chart = BENCH / "chart.png"
    return chart.read_bytes() if chart.exists() else None


_LINK = re.compile(r"(?P<bang>!?)\[(?P<text>[^\]]*)\]\((?P<target>[^)\s]+)[^)]*\)")


def _bench_markdown(text: str) -> str:
    r"""bench/results/results.md made to sit inside docs/performance.md.

    Its headings are demoted under the page's own; its links are relative to bench/results/,
    which is not part of the site, so the chart is pointed at the copied figure and any other
    relative link becomes plain text (a broken link would fail ``mkdocs build --strict``).

    >>> _bench_markdown("# Bench\n![c](chart.png) see [raw](results.json), [R](https://r-project.org)")
    '### Bench\n![c](figures/bench_chart.png) see raw (`results.json`), [R](https://r-project.org)'
    """
    text = re.sub(r"^(#+)", r"\1##", text, flags=re.MULTILINE)

    def link(m: re.Match) -> str:
        target = m.group("target")
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, flags=re.IGNORECASE) or target.startswith("#"):
            return m.group(0)  # absolute URL or in-page anchor: keep
        if m.group("bang"):
            if Path(target).name == "chart.png":
                return f"![{m.group('text')}](figures/bench_chart.png)"
            return f"*({m.group('text') or target}: see `bench/results/{target}`)*"
        return f"{m.group('text')} (`{target}`)"

    return _LINK.sub(link, text)


def _title(page: Path) -> str:
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("# "):
            return line[2:].strip().replace("`", "")
    return page.stem.replace("-", " ").capitalize()


def _listed(nav) -> set[str]:
    if isinstance(nav, str):
        return {nav}
    if isinstance(nav, dict):
        return set().union(*(_listed(v) for v in nav.values())) if nav else set()
    if isinstance(nav, list):
        return set().union(*(_listed(v) for v in nav)) if nav else set()
    return set()


def complete_nav(nav: list, docs_dir: Path) -> tuple[list, list[str]]:
    """``nav`` with every top-level page of ``docs_dir`` it lacks appended under "More".

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> _ = (d / "a.md").write_text("# A"); _ = (d / "new.md").write_text("# New page")
    >>> complete_nav([{"Home": "a.md"}], d)
    ([{'Home': 'a.md'}, {'More': [{'New page': 'new.md'}]}], ['new.md'])
    """
    listed = _listed(nav)
    extra = sorted(p.name for p in docs_dir.glob("*.md") if p.name not in listed)
    if not extra:
        return nav, []
    return list(nav) + [{"More": [{_title(docs_dir / n): n} for n in extra]}], extra


# ---------------------------------------------------------------------- mkdocs hooks
def on_config(config):
    """Append pages missing from mkdocs.yml's nav (see the module docstring)."""
    if config.get("nav"):
        config["nav"], extra = complete_nav(config["nav"], Path(config["docs_dir"]))
        if extra:
            log.info("gen_figures: pages not in mkdocs.yml's nav, listed under 'More': %s", extra)
    return config


def on_files(files, config):
    """Add the generated figures to the site (mkdocs >= 1.6: File.generated)."""
    from mkdocs.structure.files import File

    _made.clear()
    try:
        _made.update(make_figures())
    except Exception as exc:  # a broken plot must not hide the rest of the site; say so
        log.warning("gen_figures: could not draw the figures: %r", exc)
    chart = _bench_chart()
    if chart is not None:
        _made["bench_chart.png"] = chart
    for name, content in _made.items():
        files.append(File.generated(config, f"figures/{name}", content=content))
    return files


def on_page_markdown(markdown, page, config, files):
    """Replace the figure and bench markers (see the module docstring)."""
    # a page in a subfolder would need ../figures; all pages live at the top of docs/
    def figure(m: re.Match) -> str:
        name = m.group("name")
        alt = (m.group("alt") or name).strip()
        if f"{name}.png" in _made:
            return f"![{alt}](figures/{name}.png)"
        return (f"*(Figure `{name}` is drawn when the docs are built with matplotlib installed: "
                f"`pip install -e \".[docs,plot]\"`.)*")

    def bench(_m: re.Match) -> str:
        results = BENCH / "results.md"
        parts = []
        if results.exists():
            parts.append(_bench_markdown(results.read_text(encoding="utf-8")))
        if "bench_chart.png" in _made:
            parts.append("![interlace vs lme4 / glmmTMB fit times](figures/bench_chart.png)")
        if not parts:
            return ("*No benchmark results are committed yet (`bench/results/results.md`); run "
                    "the command below to produce them on your machine.*")
        return "\n\n".join(parts)

    markdown = _FIGURE.sub(figure, markdown)
    return _BENCH.sub(bench, markdown)
