"""The bar scanner: split an lme4 formula into response, fixed part and random terms.

formulaic knows nothing of ``(lhs | group)``, and Python's ``ast`` cannot read
``||`` or ``a:b`` as lme4 means them, so this module scans the text by
parenthesis depth. It does no evaluation: it returns strings that the fixed
and term builders hand to formulaic.

A covariance structure wraps a bar term as glmmTMB and lme4 (>= 1.1-36) write it:
``ar1(0 + time | subject)``, ``cs(0 + f | g)``, ``rr(0 + trait | site, d = 2)``. The
scanner records the structure's name and its extra arguments on the :class:`Bar`; whether
the name is a known structure is the registry's question (``interlace.model.covariance``).

Example
-------
>>> p = scan_formula("y ~ x + (1 + x || g) + offset(log(t))")
>>> p.response, p.fixed, p.offsets
('y', 'x', ['log(t)'])
>>> [b.text() for b in expand_bars(p.bars)]
['(1 | g)', '(0 + x | g)']
>>> scan_formula("y ~ x + ar1(0 + t | s)").bars[0]
Bar(lhs='0 + t', group='s', double=False, structure='ar1', args=())
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

__all__ = [
    "Bar",
    "ParsedFormula",
    "scan_formula",
    "parse_bar",
    "expand_bars",
    "split_top_level",
    "group_parts",
    "lhs_terms",
]


@dataclass(frozen=True)
class Bar:
    """One random-effect term as written: ``(lhs | group)``, ``(lhs || group)`` or a
    covariance structure wrapping a bar, ``ar1(lhs | group)`` (``structure = "ar1"``).

    ``args`` are the structure's extra arguments as ``(name, value)`` pairs; a positional
    argument has the name ``""`` (``rr(x | g, 2)``).
    """

    lhs: str
    group: str
    double: bool = False
    structure: str | None = None
    args: tuple = ()

    def __repr__(self) -> str:
        extra = "" if self.structure is None else f", structure={self.structure!r}, args={self.args!r}"
        return f"Bar(lhs={self.lhs!r}, group={self.group!r}, double={self.double!r}{extra})"

    def text(self) -> str:
        """The term rendered back to lme4 syntax, e.g. ``"(1 + x | g)"``, ``"ar1(0 + t | s)"``."""
        inner = f"{self.lhs} {'||' if self.double else '|'} {self.group}"
        if self.structure is None:
            return f"({inner})"
        extra = "".join(f", {k} = {v!r}" if k else f", {v!r}" for k, v in self.args)
        return f"{self.structure}({inner}{extra})"


@dataclass
class ParsedFormula:
    """The pieces of a formula: response text (or None), fixed part, bars, offsets."""

    response: str | None
    fixed: str
    bars: list[Bar] = field(default_factory=list)
    offsets: list[str] = field(default_factory=list)


def _check_balanced(text: str, what: str) -> None:
    depth = 0
    quote: str | None = None
    for ch in text:
        if quote:
            if ch == quote:
                quote = None
            continue
        if ch in "'\"`":
            quote = ch
        elif ch == "(" or ch == "[":
            depth += 1
        elif ch == ")" or ch == "]":
            depth -= 1
            if depth < 0:
                raise ValueError(f"unbalanced parentheses in {what}: {text!r}")
    if depth != 0 or quote:
        raise ValueError(f"unbalanced parentheses in {what}: {text!r}")


def _depth_positions(text: str):
    """Yield (index, char, depth) for characters outside quotes; depth before the char."""
    depth = 0
    quote: str | None = None
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = None
            continue
        if ch in "'\"`":
            quote = ch
            continue
        if ch in "([":
            yield i, ch, depth
            depth += 1
            continue
        if ch in ")]":
            depth -= 1
            yield i, ch, depth
            continue
        yield i, ch, depth


def split_top_level(text: str, seps: str) -> list[tuple[str, str]]:
    """Split ``text`` at depth-0 characters in ``seps``; returns (separator, piece) pairs.

    The first piece's separator is ``""``.

    >>> split_top_level("a + b(c + d) - 1", "+-")
    [('', 'a '), ('+', ' b(c + d) '), ('-', ' 1')]
    """
    out: list[tuple[str, str]] = []
    start, sep = 0, ""
    for i, ch, depth in _depth_positions(text):
        if depth == 0 and ch in seps:
            out.append((sep, text[start:i]))
            start, sep = i + 1, ch
    out.append((sep, text[start:]))
    return out


def _matching_paren(text: str, open_at: int) -> int:
    for i, ch, depth in _depth_positions(text):
        if i > open_at and ch == ")" and depth == 0:
            return i
    return -1


def parse_bar(text: str) -> Bar:
    """Parse one random-effect term, with or without its outer parentheses.

    >>> parse_bar("(1 + x || g)")
    Bar(lhs='1 + x', group='g', double=True)
    """
    s = text.strip()
    _check_balanced(s, "random-effect term")
    call = _structure_call(s)
    if call is not None:
        name, inner, args = call
        bar = parse_bar(inner)
        if bar.double:
            raise ValueError(f"random-effect term {text.strip()!r}: a covariance structure wraps a single-bar "
                             f"term ({name}(lhs | group)); '||' already means the diag structure")
        return Bar(bar.lhs, bar.group, False, name, args)
    if s.startswith("(") and _matching_paren(s, 0) == len(s) - 1:
        s = s[1:-1].strip()
    bars = [i for i, ch, d in _depth_positions(s) if ch == "|" and d == 0]
    if not bars:
        raise ValueError(f"malformed random-effect term {text!r}: no '|' separating the left side and the grouping factor")
    first, last = bars[0], bars[-1]
    double = len(bars) == 2 and last == first + 1
    if len(bars) > 2 or (len(bars) == 2 and not double):
        raise ValueError(f"malformed random-effect term {text!r}: more than one bar")
    lhs = s[:first].strip()
    group = s[last + 1 :].strip()
    if not lhs:
        raise ValueError(f"malformed random-effect term {text!r}: empty left side before '|' (use '1' for an intercept)")
    if not group:
        raise ValueError(f"malformed random-effect term {text!r}: missing grouping factor after '|'")
    if re.search(r"[+*|~]", group) or re.search(r"-(?!>)", group):
        raise ValueError(
            f"malformed random-effect term {text!r}: grouping factor {group!r} must be a variable, "
            "an interaction a:b, or a nesting a/b"
        )
    group_parts(group)  # validates the names
    return Bar(lhs=" ".join(lhs.split()), group=" ".join(group.split()), double=double)


_CALL = re.compile(r"([^\W\d][\w.]*)\s*\(", re.S)


def _structure_call(text: str) -> tuple[str, str, tuple] | None:
    """``(name, bar text, args)`` if ``text`` is ``name(lhs | group, ...)``: a call whose first
    argument holds a bar at its top level; None otherwise.

    >>> _structure_call("rr(0 + trait | site, d = 2)")
    ('rr', '0 + trait | site', (('d', 2),))
    >>> _structure_call("log(x)") is None
    True
    """
    s = text.strip()
    m = _CALL.match(s)
    if m is None:
        return None
    open_at = m.end() - 1
    if _matching_paren(s, open_at) != len(s) - 1:
        return None
    pieces = [p for _, p in split_top_level(s[open_at + 1:-1], ",")]
    if not any(ch == "|" and d == 0 for _, ch, d in _depth_positions(pieces[0])):
        return None
    args: list[tuple[str, object]] = []
    for p in pieces[1:]:
        am = re.fullmatch(r"\s*([^\W\d][\w.]*)\s*=(?!=)(.*)", p, flags=re.S)
        key, val = (am.group(1), am.group(2)) if am else ("", p)
        if any(ch == "|" and d == 0 for _, ch, d in _depth_positions(val)):
            raise ValueError(f"random-effect term {s!r}: only the first argument of {m.group(1)}() may be a bar term")
        args.append((key, _literal(val, s)))
    return m.group(1), pieces[0].strip(), tuple(args)


def _literal(text: str, term: str) -> object:
    """A structure argument's value: a number, a string, TRUE/FALSE (R's spelling too)."""
    t = text.strip()
    if t in ("TRUE", "T", "FALSE", "F"):
        return t.startswith("T")
    if re.fullmatch(r"[+-]?\d+L", t):  # R's integer literal 2L
        t = t[:-1]
    try:
        return ast.literal_eval(t)
    except (ValueError, SyntaxError):
        raise ValueError(f"random-effect term {term!r}: argument {t!r} is not a literal value "
                         "(a number, a string or TRUE/FALSE)") from None


def scan_formula(formula: str) -> ParsedFormula:
    """Split ``formula`` into response, fixed part, random-effect bars and ``offset()`` terms.

    >>> scan_formula("cbind(s, n - s) ~ period + (1 | herd)")
    ParsedFormula(response='cbind(s, n - s)', fixed='period', bars=[Bar(lhs='1', group='herd', double=False)], offsets=[])
    """
    if not isinstance(formula, str):
        raise TypeError(f"formula must be a string, got {type(formula).__name__}")
    _check_balanced(formula, "formula")
    tildes = [i for i, ch, d in _depth_positions(formula) if ch == "~" and d == 0]
    if len(tildes) > 1:
        raise ValueError(f"formula {formula!r} has more than one '~'")
    if tildes:
        response = formula[: tildes[0]].strip() or None
        rhs = formula[tildes[0] + 1 :]
    else:
        response, rhs = None, formula
    if response is not None and any(ch == "|" and d == 0 for _, ch, d in _depth_positions(response)):
        raise ValueError(f"malformed formula {formula!r}: '|' in the response")
    if any(ch == "|" and d == 0 for _, ch, d in _depth_positions(rhs)):
        raise ValueError(f"malformed formula {formula!r}: random-effect terms must be written in parentheses, e.g. (1 | g)")
    bars: list[Bar] = []
    offsets: list[str] = []
    kept: list[tuple[str, str]] = []
    for sep, piece in split_top_level(rhs, "+-"):
        p = piece.strip()
        if p.startswith("(") and _matching_paren(p, 0) == len(p) - 1 and any(
            ch == "|" and d == 0 for _, ch, d in _depth_positions(p[1:-1])
        ):
            if sep == "-":
                raise ValueError(f"cannot subtract the random-effect term {p!r}")
            bars.append(parse_bar(p))
            continue
        if _structure_call(p) is not None:
            if sep == "-":
                raise ValueError(f"cannot subtract the random-effect term {p!r}")
            bars.append(parse_bar(p))
            continue
        m = re.fullmatch(r"offset\s*\((.*)\)", p, flags=re.S)
        if m and _matching_paren(p, p.index("(")) == len(p) - 1:
            if sep == "-":
                raise ValueError(f"cannot subtract the offset term {p!r}")
            if not m.group(1).strip():
                raise ValueError("empty offset() in the formula")
            offsets.append(m.group(1).strip())
            continue
        if "|" in p:
            raise ValueError(f"malformed random-effect term in {p!r}")
        kept.append((sep, p))
    fixed = ""
    for sep, p in kept:
        if not p:
            if sep == "-":
                raise ValueError(f"malformed formula {formula!r}: dangling '-'")
            continue
        fixed = f"{fixed} {sep} {p}" if fixed else (f"{sep} {p}" if sep == "-" else p)
    return ParsedFormula(response=response, fixed=fixed.strip(), bars=bars, offsets=offsets)


_NAME = r"(?:`[^`]+`|[^\W\d][\w.]*)"  # any Python identifier (unicode too), R's dots, or `quoted`


def group_parts(group: str) -> list[str]:
    """The variables of a grouping expression ``a``, ``a:b`` or ``a/b``.

    >>> group_parts("a/b")
    ['a', 'b']
    """
    g = group.strip()
    while g.startswith("(") and g.endswith(")") and _matching_paren(g, 0) == len(g) - 1:
        g = g[1:-1].strip()
    parts = [p.strip() for p in re.split(r"[:/]", g)]
    for p in parts:
        if not re.fullmatch(_NAME, p):
            raise ValueError(f"malformed grouping factor {group!r}: {p!r} is not a variable name")
    return [p.strip("`") for p in parts]


def _expand_group(group: str) -> list[str]:
    """lme4's expandSlash: ``a/b`` -> ``a``, ``b:a``; ``a/b/c`` -> ``a``, ``b:a``, ``c:b:a``
    (lme4 names the nested factor inner-first, e.g. VarCorr's ``BROOD:LOCATION``)."""
    g = group.strip()
    while g.startswith("(") and g.endswith(")") and _matching_paren(g, 0) == len(g) - 1:
        g = g[1:-1].strip()
    nests = [n.strip() for n in g.split("/")]
    out: list[str] = []
    acc: list[str] = []
    for n in nests:
        acc = [":".join(p.strip() for p in n.split(":"))] + acc
        out.append(":".join(acc))
    return out


def lhs_terms(lhs: str) -> tuple[bool, list[str]]:
    """Whether the left side has an intercept, and its other terms (formulaic expansion).

    >>> lhs_terms("x * z")
    (True, ['x', 'z', 'x:z'])
    >>> lhs_terms("0 + x")
    (False, ['x'])
    """
    from formulaic import Formula

    try:
        terms = list(Formula(lhs))
    except Exception as exc:  # formulaic's parse errors have many types
        raise ValueError(f"malformed random-effect left side {lhs!r}: {exc}") from exc
    names = [str(t) for t in terms]
    has_int = "1" in names
    return has_int, [n for n in names if n != "1"]


def expand_bars(bars: list[Bar]) -> list[Bar]:
    """Expand ``||`` into uncorrelated terms and ``a/b`` into ``a`` and ``b:a`` (as lme4 does).

    >>> [b.text() for b in expand_bars([Bar("x", "a/b", True)])]
    ['(1 | a)', '(0 + x | a)', '(1 | b:a)', '(0 + x | b:a)']
    """
    out: list[Bar] = []
    for bar in bars:
        for group in _expand_group(bar.group):
            if not bar.double:
                out.append(Bar(bar.lhs, group, False, bar.structure, bar.args))
                continue
            has_int, others = lhs_terms(bar.lhs)
            if has_int:
                out.append(Bar("1", group, False))
            for t in others:
                out.append(Bar(f"0 + {t}", group, False))
    return out
