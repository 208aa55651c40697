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

import numpy as np
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


# --------------------------------------------------------------------------- item 6

#: the registry's registration loop: ``families.get_family`` asks the plugin manager,
#: which loads the built-in families' hook module, which imports the family modules;
#: a family that asks the registry for another family (NB2's zero-inflated version)
#: closes the loop. The only cycle allowed: inside families/ and plugins/, through
#: the manager's registration of the built-ins.
REGISTRY_LOOP = ("interlace.plugins.manager", "interlace.families.builtin")


def _is_registry_loop(comp: list[str]) -> bool:
    inside = all(m == "interlace.families" or m.startswith(("interlace.families.", "interlace.plugins"))
                 for m in comp)
    return inside and all(m in comp for m in REGISTRY_LOOP)


def _type_checking_only(tree: ast.Module) -> set[int]:
    skip: set[int] = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n.test):
            for b in n.body:
                skip.update(id(m) for m in ast.walk(b))
    return skip


def import_graph(sources: dict[str, tuple[str, bool]]) -> dict[str, dict[str, list[int]]]:
    """module -> {imported interlace module: lines}, from every import statement
    (module level and inside functions; ``if TYPE_CHECKING:`` blocks excepted).
    ``sources``: module -> (source text, is a package)."""
    graph: dict[str, dict[str, list[int]]] = {}
    for mod, (text, ispkg) in sources.items():
        tree = ast.parse(text)
        skip = _type_checking_only(tree)
        base = mod if ispkg else mod.rpartition(".")[0]
        out: dict[str, list[int]] = {}
        for n in ast.walk(tree):
            if id(n) in skip:
                continue
            targets: list[str] = []
            if isinstance(n, ast.Import):
                targets = [a.name for a in n.names]
            elif isinstance(n, ast.ImportFrom):
                if n.level:
                    b = base
                    for _ in range(n.level - 1):
                        b = b.rpartition(".")[0]
                    src = b + ("." + n.module if n.module else "")
                else:
                    src = n.module or ""
                targets = [f"{src}.{a.name}" if f"{src}.{a.name}" in sources else src for a in n.names]
            for t in targets:
                while t and t not in sources:
                    t = t.rpartition(".")[0]
                if t and t != mod and t != "interlace":
                    out.setdefault(t, []).append(n.lineno)
        graph[mod] = out
    return graph


def cycles(graph: dict[str, dict[str, list[int]]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def _package_sources() -> dict[str, tuple[str, bool]]:
    return {m: (p.read_text(), p.name == "__init__.py") for m, p in _modules().items()}


def test_cycle_checker_catches_a_function_level_import():
    src = {"interlace.a": ("from interlace.b import f\n", False),
           "interlace.b": ("def f():\n    from interlace import a\n    return a\n", False),
           "interlace.c": ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from interlace.a import x\n",
                           False),
           "interlace.d": ("from . import c\n", False)}
    assert cycles(import_graph(src)) == [["interlace.a", "interlace.b"]]
    assert not _is_registry_loop(["interlace.a", "interlace.b"])
    assert _is_registry_loop(["interlace.families", "interlace.families.builtin", "interlace.families.negbin2",
                              "interlace.plugins.manager"])


def test_no_import_cycle_but_the_registry_loop():
    graph = import_graph(_package_sources())
    bad = []
    for comp in cycles(graph):
        if _is_registry_loop(comp):
            continue
        edges = [f"  {a} -> {b} (line {', '.join(map(str, graph[a][b]))})"
                 for a in comp for b in graph[a] if b in comp]
        bad.append(f"cycle of {len(comp)} modules:\n" + "\n".join(edges))
    assert not bad, "\n".join(bad)


def test_import_interlace_is_cheap():
    """``import interlace`` loads no numba, scipy, pandas or dask (lazy attributes)."""
    code = ("import sys, interlace; heavy = [m for m in ('numba', 'scipy', 'pandas', 'dask', 'matplotlib') "
            "if m in sys.modules]; print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert out.stdout.strip() == ""


# --------------------------------------------------------------------------- item 1


def _fd_gradient(f, x: np.ndarray, h: float = 1e-5) -> np.ndarray:
    g = np.empty_like(x)
    for i in range(x.size):
        e = np.zeros_like(x)
        e[i] = h * max(1.0, abs(x[i]))
        g[i] = (f(x + e) - f(x - e)) / (2 * e[i])
    return g


def _engine_objectives():
    """(engine, objective, x at the optimum) for one small fit per in-memory engine."""
    import interlace
    from interlace.objective.agq import AGQObjective
    from interlace.objective.laplace import LaplaceObjective

    sleep = interlace.datasets.load("sleepstudy")
    cbpp = interlace.datasets.load("cbpp")
    f_cbpp = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
    out = []
    m = interlace.lmer("Reaction ~ Days + (Days | Subject)", sleep)
    out.append(("lmm (REML)", m.objective, m.theta.to_numpy()))
    m = interlace.glmer(f_cbpp, cbpp, family="binomial")
    out.append(("laplace", m.objective, np.r_[m.theta.to_numpy(), m.fe_params.to_numpy()]))
    agq = AGQObjective(LaplaceObjective(m.model_frame, m.family), 5)
    out.append(("agq", agq, np.r_[m.theta.to_numpy(), m.fe_params.to_numpy()]))
    m = interlace.glmer("Reaction ~ Days + (1 | Subject)", sleep, family="gaussian", dispformula="~ Days")
    out.append(("general", m.objective, np.asarray(m.optinfo["x"], dtype=float)))
    return out


def test_every_engine_objective_satisfies_the_protocol():
    from interlace.objective.protocol import Objective, ParamLayout

    for engine, obj, x in _engine_objectives():
        assert isinstance(obj, Objective), engine
        lay = obj.layout
        assert isinstance(lay, ParamLayout) and lay.size == x.size == len(lay.names), engine
        assert np.array_equal(lay.join(lay.split(x)), x)
        assert np.all(x >= lay.lower), engine
        # a point off the optimum: the exact gradient against central differences of the deviance
        x1 = x * 1.05 + 0.01 * (np.arange(x.size) % 3)
        dev = obj.deviance_at(x1)
        assert np.isfinite(dev), engine
        g = obj.gradient_at(x1)
        fd = _fd_gradient(obj.deviance_at, x1)
        np.testing.assert_allclose(g, fd, rtol=2e-4, atol=2e-4 * (1 + np.abs(fd).max()), err_msg=engine)
        obj.deviance_at(x1)
        u = obj.mode()
        assert u.shape == (obj.re.q,) and np.all(np.isfinite(u)), engine


def test_dask_objectives_implement_the_protocol():
    """The Dask objectives are the in-memory ones with their rows on the workers: the
    same protocol members, inherited or their own (their numbers: tests/test_dask.py);
    the general engine is GeneralObjective itself over the rounds (a RowBackend)."""
    from interlace.distributed.objective import DistributedLaplaceObjective
    from interlace.distributed.rounds import Rounds
    from interlace.general.objective import GeneralObjective
    from interlace.objective.protocol import Objective, RowBackend
    from interlace.objective.rows import LocalRows

    for cls in (LocalRows, Rounds):
        assert callable(getattr(cls, "run", None)), cls.__name__
    assert isinstance(Rounds(None, []), RowBackend)
    for cls in (DistributedLaplaceObjective, GeneralObjective):
        for member in ("layout", "deviance_at", "gradient_at", "mode"):
            assert hasattr(cls, member), (cls.__name__, member)
    assert set(Objective.__protocol_attrs__ if hasattr(Objective, "__protocol_attrs__") else ()) <= {
        "mf", "re", "layout", "deviance_at", "gradient_at", "mode"}


def test_tolerances_live_in_control():
    """The inner loops' tolerances and caps are Control's (no second copy on an objective)."""
    from interlace.control import DEFAULT_CONTROL
    from interlace.general.objective import GeneralObjective
    from interlace.objective.laplace import LaplaceObjective

    assert LaplaceObjective.MAX_ITER == DEFAULT_CONTROL.pirls_max_iter
    assert LaplaceObjective.MAX_HALVINGS == DEFAULT_CONTROL.pirls_max_halvings
    assert GeneralObjective.MAX_ITER == DEFAULT_CONTROL.newton_max_iter
    assert GeneralObjective.MAX_HALVINGS == DEFAULT_CONTROL.newton_max_halvings
    src = (PKG / "objective" / "laplace.py").read_text() + (PKG / "general" / "objective.py").read_text()
    tree = ast.parse(src)
    literals = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, float)]
    assert 1e-11 not in literals, "a PIRLS / Newton tolerance written as a literal instead of read from Control"
