"""Architecture rules of issue 18, checked on the source tree (AST, not grep).

1. Behaviour lives on the family classes: no module outside ``interlace/families/``
   (and the registry, ``interlace/plugins/``, whose job is to map names to
   families) compares a family's name, keeps a table keyed by family names, or
   asks ``isinstance(x, SomeSpecificFamily)``.
2. No import cycle among interlace's modules except the registry's registration
   loop (the plugin manager imports the built-in families' hook module, which
   imports the families).

Each checker is also run on an injected example, so a checker that cannot fail
fails here.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "interlace"
EXEMPT_DIRS = ("families", "plugins")  # the family classes and the name -> family registry
# the plugin base classes: ``isinstance(fam, ExponentialFamily)`` asks for a kind of family, not one
BASES = {"FamilyTraits", "ExponentialFamily", "LikelihoodFamily", "ProtocolFamilyAdapter"}
# family names that are also names from the statistics (``beta`` the fixed effects):
# flagged only where the other side of the comparison speaks of a family or a name
AMBIGUOUS = {"beta", "t"}  # "T" is also R's TRUE


# --------------------------------------------------------------------------- helpers


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package."""
    out = {}
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _family_vocabulary() -> tuple[set[str], set[str]]:
    """(family names and aliases in lower case, family class names) from the
    registry, the known plugins and the family modules themselves."""
    from interlace.families.base import ExponentialFamily
    from interlace.families.likelihood import LikelihoodFamily
    from interlace.plugins.known import KNOWN_PLUGIN_FAMILIES
    from interlace.plugins.manager import get_registry

    names = set(KNOWN_PLUGIN_FAMILIES)
    for e in get_registry().entries():
        names.add(e.name.lower())
        names.update(a.lower() for a in e.aliases)
    classes = set()
    import importlib

    for mod, path in _modules().items():
        if not mod.startswith("interlace.families"):
            continue
        m = importlib.import_module(mod)
        for obj in vars(m).values():
            if (isinstance(obj, type) and issubclass(obj, (ExponentialFamily, LikelihoodFamily))
                    and obj.__name__ not in BASES):
                classes.add(obj.__name__)
                nm = getattr(obj, "name", None)
                if isinstance(nm, str):
                    names.add(nm.lower())
    names.discard("custom")
    names.discard("likelihood")
    return names, classes


def _strings_in(node: ast.AST) -> list[str]:
    """String constants of a literal (str, tuple/list/set, dict keys, frozenset(...))."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return [s for e in node.elts for s in _strings_in(e)]
    if isinstance(node, ast.Dict):
        return [s for k in node.keys if k is not None for s in _strings_in(k)]
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("set", "frozenset",
                                                                                            "tuple", "dict"):
        return [s for a in node.args for s in _strings_in(a)]
    return []


def _module_constants(tree: ast.Module) -> dict[str, list[str]]:
    """Module-level names bound to literals holding strings."""
    out: dict[str, list[str]] = {}
    for st in tree.body:
        targets, value = [], None
        if isinstance(st, ast.Assign):
            targets, value = st.targets, st.value
        elif isinstance(st, ast.AnnAssign) and st.value is not None:
            targets, value = [st.target], st.value
        for t in targets:
            if isinstance(t, ast.Name) and value is not None:
                s = _strings_in(value)
                if s:
                    out[t.id] = s
    return out


def family_name_tests(source: str, names: set[str], classes: set[str],
                      foreign: dict[str, list[str]] | None = None) -> list[tuple[int, str]]:
    """(line, what) for every test of a family's name in ``source``.

    Flagged: a comparison (==, !=, in, not in, is) with a family-name string, a
    literal collection of them, or a module constant holding them (``foreign``:
    constants of other modules reached as ``alias.NAME``); ``.startswith`` /
    ``.endswith`` with a family name; ``isinstance`` / ``issubclass`` with a
    specific family class.
    """
    tree = ast.parse(source)
    consts = _module_constants(tree)
    foreign = foreign or {}
    hits: list[tuple[int, str]] = []

    def named(strings: list[str]) -> list[str]:
        return [s for s in strings if s.strip().lower() in names]

    def familyish(node: ast.AST) -> bool:
        ids = [n.id for n in ast.walk(node) if isinstance(n, ast.Name)]
        ids += [n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)]
        ids += [n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
        return any("fam" in i.lower() or "name" in i.lower() for i in ids)

    def operand(node: ast.AST) -> list[str]:
        if isinstance(node, ast.Name) and node.id in consts:
            return named(consts[node.id])
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            return named(foreign.get(f"{node.value.id}.{node.attr}", []))
        return named(_strings_in(node))

    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            for i, side in enumerate(sides):
                found = operand(side)
                others = sides[:i] + sides[i + 1:]
                if found and all(f.lower() in AMBIGUOUS for f in found) and not any(map(familyish, others)):
                    found = []  # ``p.kind == "beta"``: the statistics' beta
                if found:
                    hits.append((node.lineno, f"compares with family name(s) {sorted(set(found))}"))
                    break
        elif isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Attribute) and f.attr in ("startswith", "endswith") and node.args:
                found = operand(node.args[0])
                if found and all(x.lower() in AMBIGUOUS for x in found) and not familyish(f.value):
                    found = []
                if found:
                    hits.append((node.lineno, f".{f.attr}() with family name(s) {sorted(set(found))}"))
            if isinstance(f, ast.Name) and f.id in ("isinstance", "issubclass") and len(node.args) == 2:
                cls = node.args[1]
                elts = cls.elts if isinstance(cls, ast.Tuple) else [cls]
                ids = [e.id if isinstance(e, ast.Name) else e.attr if isinstance(e, ast.Attribute) else None
                       for e in elts]
                bad = [i for i in ids if i in classes]
                if bad:
                    hits.append((node.lineno, f"{f.id}() with family class(es) {bad}"))
    return hits


def _foreign_constants(tree: ast.Module, constants: dict[str, dict[str, list[str]]]) -> dict[str, list[str]]:
    """``alias.NAME`` -> strings, for ``from interlace.x import y as alias`` / ``import interlace.x as alias``."""
    out: dict[str, list[str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("interlace"):
            for a in node.names:
                mod = f"{node.module}.{a.name}"
                for k, v in constants.get(mod, {}).items():
                    out[f"{a.asname or a.name}.{k}"] = v
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("interlace") and a.asname:
                    for k, v in constants.get(a.name, {}).items():
                        out[f"{a.asname}.{k}"] = v
    return out


def scan_family_name_tests() -> list[str]:
    names, classes = _family_vocabulary()
    mods = _modules()
    trees = {m: ast.parse(p.read_text()) for m, p in mods.items()}
    constants = {m: _module_constants(t) for m, t in trees.items()}
    out = []
    for mod, path in mods.items():
        parts = mod.split(".")
        if len(parts) > 1 and parts[1] in EXEMPT_DIRS:
            continue
        foreign = _foreign_constants(trees[mod], constants)
        for line, what in family_name_tests(path.read_text(), names, classes, foreign):
            out.append(f"{path.relative_to(ROOT)}:{line}: {what}")
    return out


# --------------------------------------------------------------------------- item 4


def test_family_name_checker_catches_injected_examples():
    names, classes = {"gamma", "zoib", "binomial", "poisson"}, {"NegativeBinomial2Family"}
    src = textwrap.dedent('''
        _COUNT = {"poisson", "zip"}
        def f(fam, other, kg):
            if getattr(fam, "name", None) != "gamma":
                pass
            if fam.name in ("binomial", "x"):
                pass
            if name in _COUNT:
                pass
            if str(fam.name).startswith("binomial"):
                pass
            if isinstance(fam, NegativeBinomial2Family):
                pass
            if fam.kind == "zoib-like" or other == "beta_" or p.kind == "beta":
                pass
            if getattr(fam, "name", "") == "beta":
                pass
            return "gamma"  # a string alone is no test
    ''')
    hits = family_name_tests(src, names | {"beta"}, classes)
    assert [h[0] for h in hits] == [4, 6, 8, 10, 12, 16]
    foreign = family_name_tests("def g(fam, kg):\n    return fam in kg.CODES\n", names, classes,
                                {"kg.CODES": ["binomial", "poisson"]})
    assert len(foreign) == 1


def test_no_family_name_tests_outside_families():
    hits = scan_family_name_tests()
    assert not hits, "family names tested outside interlace/families/:\n" + "\n".join(hits)


def test_plugin_base_classes_are_exported():
    import interlace
    import interlace.families as F

    for name in ("ExponentialFamily", "LikelihoodFamily", "GLMMFamily", "Link", "VarianceFunction"):
        assert name in F.__all__, name
        assert getattr(F, name) is not None
    assert interlace.LikelihoodFamily is F.LikelihoodFamily
    assert interlace.ExponentialFamily is F.ExponentialFamily

