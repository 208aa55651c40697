"""The docs cannot rot: every ```python block in docs/*.md and README.md runs here.

Conventions (written for page authors in docs/index.md's "About these docs"):

- The ```python blocks of one page run in order in one shared namespace, from a scratch
  working directory.
- A ```text block that follows a python block (only blank lines between) holds the output the
  block prints. Numbers are compared with a relative tolerance of 1e-3 (or one unit in the last
  printed digit of the expected number, since printed numbers are rounded); the rest of the text
  must match exactly after whitespace is normalized. A python block with no ```text block after
  it is run but its output is not compared.
- ``<!-- skip-test -->`` on the line before a python block: not run (e.g. it needs a cluster).
- ``<!-- requires: matplotlib -->`` (comma-separated modules): run only when those modules
  import, left out otherwise (the plots need the ``plot`` extra); later blocks must not depend on
  what such a block defines.

Run ``python tests/test_docs.py --show docs/quickstart.md`` to print what each block prints.

Example
-------
>>> blocks = extract_blocks("```python\\nprint(1)\\n```\\n\\n```text\\n1\\n```\\n")
>>> [(b.code, b.expected) for b in blocks]
[('print(1)\\n', '1\\n')]
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import math
import os
import re
import subprocess
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
PAGES = sorted(DOCS.glob("*.md")) + [REPO / "README.md"]

REL_TOL = 1e-3

_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})\s*(?P<info>[^\s`]*)[^`]*$")
_SKIP = re.compile(r"<!--\s*skip-test\s*-->")
_REQUIRES = re.compile(r"<!--\s*requires:\s*(?P<mods>[\w.,\s]+?)\s*-->")
# A number as it is printed: sign, digits with optional decimals, optional exponent; or
# nan / inf. Anything else in an output is compared as text.
# A digit glued to a word or a dot (``period[T.2]``, ``Subject.1``, ``x1``) is part of a name.
_NUMBER = re.compile(r"(?<![\w.])(?:[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?|[-+]?(?:nan|inf)\b)",
                     re.IGNORECASE)


@dataclass
class Block:
    """One ```python block: its code, the expected output (or None) and its markers."""

    code: str
    line: int
    expected: str | None = None
    skip: bool = False
    requires: list[str] = field(default_factory=list)


def _fences(text: str) -> list[tuple[int, int, str, str]]:
    """(start line, end line, info string, body) of every top-level fenced block."""
    lines = text.splitlines(keepends=True)
    out, i = [], 0
    while i < len(lines):
        m = _FENCE.match(lines[i].rstrip("\n"))
        if not m:
            i += 1
            continue
        fence, info = m.group("fence"), m.group("info").lower()
        j = i + 1
        while j < len(lines):
            close = lines[j].strip()
            if close.startswith(fence[0] * len(fence)) and set(close) <= {fence[0]}:
                break
            j += 1
        out.append((i, j, info, "".join(lines[i + 1 : j])))
        i = j + 1
    return out


def extract_blocks(text: str) -> list[Block]:
    """The python blocks of a markdown page with their expected output and markers."""
    lines = text.splitlines()
    fences = _fences(text)
    blocks: list[Block] = []
    for k, (start, end, info, body) in enumerate(fences):
        if info not in ("python", "py", "python3"):
            continue
        # markers: the non-blank line right before the fence
        prev = next((lines[i] for i in range(start - 1, -1, -1) if lines[i].strip()), "")
        block = Block(code=body, line=start + 1, skip=bool(_SKIP.search(prev)))
        req = _REQUIRES.search(prev)
        if req:
            block.requires = [m.strip() for m in req.group("mods").split(",") if m.strip()]
        if k + 1 < len(fences):
            nstart, _, ninfo, nbody = fences[k + 1]
            between = lines[end + 1 : nstart]
            if ninfo == "text" and all(not s.strip() for s in between):
                block.expected = nbody
        blocks.append(block)
    return blocks


def _pieces(text: str) -> list[str | float]:
    """Split output into whitespace-free text pieces and numbers (kept as their strings)."""
    out: list = []
    for token in text.split():
        pos = 0
        for m in _NUMBER.finditer(token):
            if m.start() > pos:
                out.append(token[pos : m.start()])
            out.append(("num", m.group()))
            pos = m.end()
        if pos < len(token):
            out.append(token[pos:])
    return out


def _last_digit_unit(s: str) -> float:
    """One unit in the last printed digit of a decimal number (0 for integers)."""
    mant, _, exp = s.lower().partition("e")
    if "." not in mant:
        return 0.0
    decimals = len(mant.split(".")[1])
    return 10.0 ** (-decimals + (int(exp) if exp else 0))


def numbers_close(expected: str, actual: str, rel: float = REL_TOL) -> bool:
    """Printed numbers agree: relative tolerance, or within one unit of the last digit.

    >>> numbers_close("0.278", "0.2785"), numbers_close("56", "57")
    (True, False)
    """
    a, b = float(expected), float(actual)
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(a - b) <= rel * max(abs(a), abs(b)) or abs(a - b) <= _last_digit_unit(expected) * 1.000001


def compare_output(expected: str, actual: str, rel: float = REL_TOL) -> str | None:
    """None when the outputs agree, else a message naming the first difference."""
    e, a = _pieces(expected), _pieces(actual)
    for i, (pe, pa) in enumerate(zip(e, a)):
        if isinstance(pe, tuple) and isinstance(pa, tuple):
            if not numbers_close(pe[1], pa[1], rel):
                return f"piece {i}: expected number {pe[1]}, got {pa[1]}"
        elif pe != pa:
            show = lambda p: p[1] if isinstance(p, tuple) else p  # noqa: E731
            return f"piece {i}: expected {show(pe)!r}, got {show(pa)!r}"
    if len(e) != len(a):
        return f"expected {len(e)} pieces of output, got {len(a)}"
    return None


def _missing(mods: list[str]) -> list[str]:
    return [m for m in mods if importlib.util.find_spec(m) is None]


def run_page(path: Path, workdir: Path, check: bool = True) -> list[tuple[Block, str]]:
    """Execute a page's blocks in order in one namespace; returns (block, printed output).

    With ``check``, a block whose output differs from its ```text block raises AssertionError.
    """
    blocks = extract_blocks(path.read_text(encoding="utf-8"))
    ns: dict = {"__name__": f"docs_{path.stem}"}
    results = []
    old = Path.cwd()
    os.chdir(workdir)
    try:
        for block in blocks:
            if block.skip:
                continue
            if _missing(block.requires):
                # only this block is left out: later blocks must not depend on what it defines
                continue
            buf = io.StringIO()
            code = compile(block.code, f"{path.name}:{block.line}", "exec")
            with contextlib.redirect_stdout(buf), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    exec(code, ns)
                except Exception as exc:
                    raise AssertionError(
                        f"{path.name}, block at line {block.line} raised {exc!r}\n{block.code}"
                    ) from exc
            out = buf.getvalue()
            results.append((block, out))
            if check and block.expected is not None:
                diff = compare_output(block.expected, out)
                assert diff is None, (
                    f"{path.name}, block at line {block.line}: {diff}\n"
                    f"--- expected\n{block.expected}--- got\n{out}"
                )
    finally:
        os.chdir(old)
    return results


# ---------------------------------------------------------------------- tests
def _hook():
    sys.path.insert(0, str(DOCS))
    try:
        import gen_figures
    finally:
        sys.path.remove(str(DOCS))
    return gen_figures


@pytest.fixture(autouse=True)
def _headless(monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")


def test_pages_exist():
    """The pages this issue owns are there, and every page has been picked up."""
    names = {p.name for p in PAGES}
    for page in ("index.md", "quickstart.md", "migration.md", "loglik.md", "performance.md",
                 "api.md"):
        assert page in names


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_page_examples_run(page: Path, tmp_path: Path):
    run_page(page, tmp_path)


def test_quickstart_checks_its_numbers():
    """The quickstart is not just run: most of its blocks carry expected output."""
    blocks = extract_blocks((DOCS / "quickstart.md").read_text())
    checked = [b for b in blocks if b.expected is not None and not b.skip]
    assert len(checked) >= 8


def test_nav_lists_every_page():
    """mkdocs.yml's nav names only pages that exist; a page it does not name yet is still
    reachable, because the build hook lists it under "More" (and this test warns)."""
    nav = (REPO / "mkdocs.yml").read_text()
    listed = set(re.findall(r":\s*([\w./-]+\.md)\s*$", nav, flags=re.MULTILINE))
    on_disk = {p.name for p in DOCS.glob("*.md")}
    assert listed - on_disk == set(), f"nav entries without a page: {sorted(listed - on_disk)}"
    if on_disk - listed:
        warnings.warn(f"pages not in mkdocs.yml's nav (the hook adds them under 'More'): "
                      f"{sorted(on_disk - listed)}")
    _, extra = _hook().complete_nav([{"x": n} for n in sorted(listed)], DOCS)
    assert set(extra) == on_disk - listed


def test_compare_output_conventions():
    assert compare_output("a = 1.0000\n", "a   =  1.0004") is None
    assert compare_output("a = 1.0000", "a = 1.0020") is not None
    assert compare_output("1.79e-09", "1.80e-09") is None  # last-digit rounding
    assert compare_output("period[T.2]  -0.992", "period[T.2] -0.9923") is None
    assert compare_output("period[T.2]", "period[T.3]") is not None
    assert compare_output("Subject.1 x1", "Subject.2 x1") is not None
    assert compare_output("x nan", "x NaN") is None
    assert compare_output("1 2", "1 2 3") is not None
    assert compare_output("True", "False") is not None


def test_markers():
    text = (
        "<!-- skip-test -->\n```python\nraise SystemExit\n```\n\n"
        "<!-- requires: matplotlib, numpy -->\n```python\nprint(2)\n```\n```text\n2\n```\n"
    )
    a, b = extract_blocks(text)
    assert a.skip and not b.skip
    assert b.requires == ["matplotlib", "numpy"] and b.expected == "2\n"


def _api_modules() -> list[str]:
    """The modules whose docstrings docs/api.md renders (their examples are doctests)."""
    import pkgutil

    import interlace.families

    mods = ["interlace.api", "interlace.results.glmm_result", "interlace.inference.anova",
            "interlace.datasets", "interlace.families"]
    mods += [f"interlace.families.{m.name}" for m in pkgutil.iter_modules(interlace.families.__path__)]
    if importlib.util.find_spec("matplotlib") is not None:
        mods.append("interlace.results.plots")
    return mods


@pytest.mark.parametrize("module", _api_modules())
def test_api_reference_doctests(module: str, tmp_path: Path, monkeypatch):
    """The examples in the docstrings the API reference shows are run too."""
    import doctest
    import importlib

    monkeypatch.chdir(tmp_path)
    mod = importlib.import_module(module)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
                              verbose=False, report=True)
    assert res.failed == 0, f"{module}: {res.failed} of {res.attempted} doctest examples failed"


def test_hook_bench_results(tmp_path: Path, monkeypatch):
    """<!-- bench-results --> takes bench/results/results.md in with its links made safe for
    a strict build, or says that no results are committed."""
    hook = _hook()
    monkeypatch.setattr(hook, "BENCH", tmp_path)
    monkeypatch.setattr(hook, "_made", {})
    page = "# Performance\n\n<!-- bench-results -->\n"
    assert "No benchmark results are committed yet" in hook.on_page_markdown(page, None, None, None)
    (tmp_path / "results.md").write_text("# Results\n\n| case | x |\n|---|---|\n| cbpp | 1 |\n\n"
                                         "![chart](chart.png) [json](results.json)\n")
    monkeypatch.setattr(hook, "_made", {"bench_chart.png": b"png"})
    out = hook.on_page_markdown(page, None, None, None)
    assert "### Results" in out and "| cbpp | 1 |" in out
    assert "![chart](figures/bench_chart.png)" in out and "](results.json)" not in out


def test_hook_figure_markers(monkeypatch):
    hook = _hook()
    monkeypatch.setattr(hook, "_made", {"caterpillar.png": b"png"})
    out = hook.on_page_markdown("<!-- figure: caterpillar | herds -->\n<!-- figure: residuals -->",
                                None, None, None)
    assert "![herds](figures/caterpillar.png)" in out
    assert "pip install" in out and "figures/residuals.png" not in out


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="needs interlace[plot]")
def test_figures_hook_makes_pngs(tmp_path: Path):
    """docs/gen_figures.py draws the caterpillar and residual figures as PNG bytes."""
    figs = _hook().make_figures()
    for name in ("caterpillar.png", "residuals.png", "caterpillar_sleepstudy.png"):
        assert figs[name][:8] == b"\x89PNG\r\n\x1a\n", name


@pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None,
                    reason="needs the docs extra: pip install -e '.[docs]'")
def test_mkdocs_build_strict(tmp_path: Path):
    """The site builds with --strict (broken links, missing pages, bad docstrings fail)."""
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=REPO, capture_output=True, text=True, env={**os.environ, "MPLBACKEND": "Agg"},
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert (tmp_path / "site" / "quickstart" / "index.html").exists()


def test_api_reference_renders_every_docstring_example_as_code():
    """docs/griffe_examples.py gives every docstring with a doctest a numpy ``Examples``
    heading (griffe renders that section as code; under interlace's ``Example`` heading, or
    none, the ``>>>`` lines became nested block quotes)."""
    import ast
    import importlib.util as iu

    spec = iu.spec_from_file_location("griffe_examples", DOCS / "griffe_examples.py")
    ext = iu.module_from_spec(spec)
    spec.loader.exec_module(ext)
    heading = re.compile(r"^[ \t]*Examples\n[ \t]*--------[ \t]*\n(?:.*\n)*?[ \t]*>>> ", re.M)
    n = 0
    for path in sorted((REPO / "interlace").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc and ">>>" in doc:
                    n += 1
                    fixed = ext.rename_example_headings(doc)
                    first = fixed.index(">>>")
                    m = heading.search(fixed)
                    assert m is not None and m.end() - 4 <= first, (path, getattr(node, "name", ""))
    assert n > 50


if __name__ == "__main__":  # python tests/test_docs.py --show docs/page.md
    import tempfile

    if len(sys.argv) == 3 and sys.argv[1] == "--show":
        with tempfile.TemporaryDirectory() as d:
            for blk, printed in run_page(Path(sys.argv[2]).resolve(), Path(d), check=False):
                print(f"=== block at line {blk.line}")
                print(printed, end="")
                if blk.expected is not None:
                    diff = compare_output(blk.expected, printed)
                    print(f"--- {'OK' if diff is None else 'DIFF: ' + diff}")
    else:
        print(__doc__)
