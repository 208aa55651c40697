"""The bar scanner: unit tests and round trips of random term lists through formula text."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from interlace.formula.bars import (
    Bar,
    expand_bars,
    group_parts,
    lhs_terms,
    parse_bar,
    scan_formula,
    split_top_level,
)

# ---------------------------------------------------------------- unit tests


def test_simple_random_intercept():
    p = scan_formula("y ~ x + (1 | g)")
    assert p.response == "y"
    assert p.fixed == "x"
    assert p.bars == [Bar("1", "g")]
    assert p.offsets == []


def test_cbind_response_and_nested_parens():
    p = scan_formula("cbind(incidence, size - incidence) ~ period + (1 | herd)")
    assert p.response == "cbind(incidence, size - incidence)"
    assert p.fixed == "period"
    assert p.bars == [Bar("1", "herd")]


def test_double_bar_and_expansion():
    p = scan_formula("Reaction ~ Days + (Days || Subject)")
    assert p.bars == [Bar("Days", "Subject", double=True)]
    assert [b.text() for b in expand_bars(p.bars)] == ["(1 | Subject)", "(0 + Days | Subject)"]


def test_double_bar_without_intercept():
    assert [b.text() for b in expand_bars([parse_bar("(0 + x + z || g)")])] == ["(0 + x | g)", "(0 + z | g)"]


def test_double_bar_interaction_lhs_expands_terms():
    assert [b.text() for b in expand_bars([parse_bar("(x * z || g)")])] == [
        "(1 | g)",
        "(0 + x | g)",
        "(0 + z | g)",
        "(0 + x:z | g)",
    ]


def test_nesting_slash():
    assert [b.text() for b in expand_bars([parse_bar("(1 | a/b)")])] == ["(1 | a)", "(1 | b:a)"]
    assert [b.group for b in expand_bars([parse_bar("(1 | a/b/c)")])] == ["a", "b:a", "c:b:a"]


def test_interaction_group_kept():
    assert expand_bars([parse_bar("(1 | a:b)")]) == [Bar("1", "a:b")]
    assert group_parts("a:b") == ["a", "b"]


def test_offsets_extracted_and_removal_kept():
    p = scan_formula("y ~ x - 1 + offset(log(t)) + (0 + x | g) + offset(u)")
    assert p.fixed == "x - 1"
    assert p.offsets == ["log(t)", "u"]
    assert p.bars == [Bar("0 + x", "g")]


def test_only_bars_gives_empty_fixed():
    assert scan_formula("y ~ (1 | g)").fixed == ""
    assert scan_formula("y ~ 0 + (1 | g)").fixed == "0"


def test_several_terms_one_factor_and_function_in_fixed():
    p = scan_formula("y ~ I(x ** 2) + log(z) + (1 | g) + (0 + x | g)")
    assert p.fixed == "I(x ** 2) + log(z)"
    assert p.bars == [Bar("1", "g"), Bar("0 + x", "g")]


def test_split_top_level():
    assert split_top_level("a + f(b + c) - 1", "+-") == [("", "a "), ("+", " f(b + c) "), ("-", " 1")]


def test_lhs_terms():
    assert lhs_terms("1") == (True, [])
    assert lhs_terms("0 + x") == (False, ["x"])
    assert lhs_terms("x") == (True, ["x"])


@pytest.mark.parametrize(
    "bad",
    ["y ~ (1 | )", "y ~ (| g)", "y ~ (1 | g", "y ~ x + 1 | g", "y ~ (1 | g | h)", "y ~ x - (1 | g)",
     "y ~ (1 | a + b)", "y ~ x ~ z", "y ~ (1 | 3g)"],
)
def test_malformed(bad):
    with pytest.raises(ValueError):
        scan_formula(bad)


def test_non_string_formula():
    with pytest.raises(TypeError):
        scan_formula(3)


# ---------------------------------------------------------------- property tests

names = st.sampled_from(["x", "z", "w1", "Days", "HEIGHT_c", "dose"])
groups = st.sampled_from(["g", "herd", "Subject", "site", "a_b"])
lhs_pieces = st.lists(names, min_size=0, max_size=3, unique=True)


@st.composite
def bars(draw):
    pieces = draw(lhs_pieces)
    intercept = draw(st.sampled_from(["1", "0", ""])) if pieces else "1"
    lhs = " + ".join(([intercept] if intercept else []) + pieces)
    kind = draw(st.sampled_from(["plain", "interaction", "nest"]))
    g = draw(groups)
    if kind != "plain":
        g2 = draw(groups.filter(lambda s: s != g))
        g = f"{g}{':' if kind == 'interaction' else '/'}{g2}"
    return Bar(lhs=lhs, group=g, double=draw(st.booleans()))


fixed_terms = st.lists(
    st.sampled_from(["x", "z", "log(z)", "I(x ** 2)", "x:z", "C(f)", "center(w1)", "np.exp(dose)"]),
    min_size=0,
    max_size=4,
    unique=True,
)


def _render(bar: Bar, spaces: bool) -> str:
    sep = "||" if bar.double else "|"
    return f"({bar.lhs} {sep} {bar.group})" if spaces else f"({bar.lhs.replace(' ', '')}{sep}{bar.group})"


@settings(max_examples=200, deadline=None)
@given(
    fixed=fixed_terms,
    bar_list=st.lists(bars(), min_size=1, max_size=4),
    offsets=st.lists(st.sampled_from(["log(t)", "u", "np.log(t + 1)"]), max_size=2),
    response=st.sampled_from(["y", "cbind(s, n - s)", "log(y)", "s / n"]),
    seed=st.randoms(use_true_random=False),
    spaces=st.booleans(),
)
def test_terms_survive_round_trip(fixed, bar_list, offsets, response, seed, spaces):
    pieces = list(fixed) + [_render(b, spaces) for b in bar_list] + [f"offset({o})" for o in offsets]
    seed.shuffle(pieces)
    formula = f"{response} ~ " + " + ".join(pieces)
    p = scan_formula(formula)
    assert p.response == response
    # Same multiset of bars in the order they were written.
    written = [piece for piece in pieces if piece.startswith("(")]
    assert [_render(b, spaces) for b in p.bars] == written
    if spaces:
        assert [b.text() for b in p.bars] == written
    assert p.offsets == [piece[len("offset(") : -1] for piece in pieces if piece.startswith("offset(")]
    fixed_back = [s.strip() for s in p.fixed.split(" + ")] if p.fixed else []
    assert fixed_back == [piece for piece in pieces if piece in fixed]


@settings(max_examples=200, deadline=None)
@given(bar=bars())
def test_parse_bar_round_trip_and_expansion(bar):
    assert parse_bar(bar.text()) == bar
    expanded = expand_bars([bar])
    assert all(not b.double and "/" not in b.group for b in expanded)
    n_groups = bar.group.count("/") + 1
    has_int, others = lhs_terms(bar.lhs)
    per_group = (int(has_int) + len(others)) if bar.double else 1
    assert len(expanded) == n_groups * per_group
    # Re-scanning each expanded term gives it back.
    for b in expanded:
        assert parse_bar(b.text()) == b
