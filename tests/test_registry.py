"""The pluggy family registry: built-ins through the hook, entry points loaded lazily and
once, broken plugins warn and name themselves, interlace.family() and available()."""

from __future__ import annotations

import sys
import textwrap
import types
import warnings
from importlib import metadata
from pathlib import Path

import pandas as pd
import pytest

import interlace
from interlace import families
from interlace.families import BinomialFamily, CauchitLink, GammaFamily, PoissonFamily
from interlace.plugins import FamilyRegistry, PluginWarning, hookimpl, manager
from interlace.plugins.registry import FamilyEntry

BUILTINS = {"binomial", "poisson", "gaussian", "gamma", "inverse_gaussian"}


@pytest.fixture
def fresh(monkeypatch):
    """A registry rebuilt from scratch with the given fake entry points; restored afterwards."""

    def install(eps):
        calls = {"n": 0}

        def fake():
            calls["n"] += 1
            return list(eps)

        monkeypatch.setattr(manager, "_iter_entry_points", fake)
        manager.reset()
        return calls

    yield install
    manager.reset()


def _ep(name: str, value: str) -> metadata.EntryPoint:
    return metadata.EntryPoint(name=name, value=value, group="interlace.families")


def test_builtins_registered_by_interlace(fresh):
    fresh([])
    avail = families.available()
    assert BUILTINS <= set(avail)
    assert all(avail[n] == "interlace" for n in BUILTINS)
    frame = families.available(as_frame=True)
    assert isinstance(frame, pd.DataFrame) and frame.index.name == "name"
    assert frame.loc["gamma", "aliases"] == "Gamma, ziGamma"  # glmmTMB's ziGamma is its Gamma (+ ziformula)
    assert frame.loc["binomial", "distribution"] == "interlace"


def test_family_by_name_with_params():
    fam = interlace.family("gamma", link="log")
    assert isinstance(fam, GammaFamily) and fam.link.name == "log"
    assert interlace.family("Gamma").link.name == "inverse"  # R's spelling is an alias
    assert isinstance(interlace.family("POISSON"), PoissonFamily)  # case-insensitive fallback
    assert families.get_family("binomial", link=CauchitLink()).link.name == "cauchit"
    with pytest.raises(TypeError, match="does not accept parameters"):
        interlace.family("poisson", shape=2.0)
    with pytest.raises(TypeError):
        interlace.family(PoissonFamily())  # type: ignore[arg-type]


def test_unknown_name_lists_available():
    with pytest.raises(ValueError, match="unknown family 'binomail'.*binomial.*gamma.*poisson"):
        interlace.family("binomail")


def test_loading_happens_once_and_lazily(fresh):
    calls = fresh([])
    assert manager._registry is None  # nothing loaded until a family is asked for
    assert calls["n"] == 0
    for _ in range(5):
        interlace.family("binomial")
        families.available()
        manager.get_plugin_manager()
    assert calls["n"] == 1


def test_builtin_entry_point_does_not_register_twice(fresh):
    fresh([_ep("builtin", "interlace.families.builtin")])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert BUILTINS <= set(families.available())


def test_broken_plugin_warns_naming_itself_and_interlace_still_works(fresh):
    fresh([_ep("brokenplug", "interlace_no_such_module_xyz")])
    with pytest.warns(PluginWarning, match="'brokenplug'.*failed to load"):
        avail = families.available()
    assert BUILTINS <= set(avail)
    assert isinstance(interlace.family("binomial"), BinomialFamily)


def _write_plugin(tmp_path, monkeypatch, modname: str, body: str) -> None:
    (tmp_path / f"{modname}.py").write_text(textwrap.dedent(body))
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop(modname, None)


def test_plugin_from_entry_point(fresh, tmp_path, monkeypatch):
    _write_plugin(
        tmp_path,
        monkeypatch,
        "fake_interlace_plugin_ok",
        """
        from interlace.plugins import hookimpl
        from interlace.families import BinomialFamily, CauchitLink

        @hookimpl
        def interlace_register_families(registry):
            registry.add("fake_cauchit", lambda: BinomialFamily(link=CauchitLink()),
                         aliases=("fcauchit",))
        """,
    )
    fresh([_ep("fakeok", "fake_interlace_plugin_ok")])
    fam = interlace.family("fcauchit")
    assert fam.link.name == "cauchit"
    entry = manager.get_registry().get("fake_cauchit")
    assert entry.distribution == "entry point 'fakeok'"  # no installed distribution behind it
    assert entry.plugin == "fakeok"


def test_plugin_whose_hook_raises_is_rolled_back(fresh, tmp_path, monkeypatch):
    _write_plugin(
        tmp_path,
        monkeypatch,
        "fake_interlace_plugin_bad",
        """
        from interlace.plugins import hookimpl
        from interlace.families import PoissonFamily

        @hookimpl
        def interlace_register_families(registry):
            registry.add("half_registered", PoissonFamily)
            raise RuntimeError("boom")
        """,
    )
    fresh([_ep("badhook", "fake_interlace_plugin_bad")])
    with pytest.warns(PluginWarning, match="'badhook'.*failed while registering.*boom"):
        avail = families.available()
    assert "half_registered" not in avail
    assert BUILTINS <= set(avail)


def test_plugin_cannot_steal_a_builtin_name(fresh, tmp_path, monkeypatch):
    _write_plugin(
        tmp_path,
        monkeypatch,
        "fake_interlace_plugin_thief",
        """
        from interlace.plugins import hookimpl
        from interlace.families import PoissonFamily

        @hookimpl
        def interlace_register_families(registry):
            registry.add("binomial", PoissonFamily)
        """,
    )
    fresh([_ep("thief", "fake_interlace_plugin_thief")])
    with pytest.warns(PluginWarning, match="'binomial'.*already provided by 'interlace'"):
        families.available()  # loads the plugins (a built-in name alone would not)
    assert isinstance(interlace.family("binomial"), BinomialFamily)


def test_register_plugin_at_runtime(fresh):
    fresh([])
    plugin = types.SimpleNamespace(
        interlace_register_families=hookimpl(
            lambda registry: registry.add("runtime_pois", PoissonFamily)
        )
    )
    manager.register_plugin(plugin, name="runtime-plugin", distribution="my-dist")
    assert families.available()["runtime_pois"] == "my-dist"
    assert isinstance(interlace.family("runtime_pois"), PoissonFamily)


def test_family_registry_standalone():
    reg = FamilyRegistry()
    reg.add("gamma", GammaFamily, aliases=("Gamma",), distribution="somewhere")
    assert "Gamma" in reg and "gamma" in reg and "nope" not in reg
    assert reg.names() == ["gamma"] and len(reg) == 1
    assert isinstance(reg.get("gamma"), FamilyEntry)
    assert reg.create("gamma", link="log").link.name == "log"
    with pytest.warns(PluginWarning):
        reg.add("gamma", PoissonFamily)
    reg.add("gamma", PoissonFamily, replace=True)
    assert isinstance(reg.create("gamma"), PoissonFamily)
    with pytest.raises(TypeError):
        reg.add("x", 3)  # type: ignore[arg-type]
    reg.remove("gamma")
    with pytest.raises(ValueError, match="available families: (;|$)"):
        reg.get("gamma")


def test_installed_delaporte_plugin_found_via_entry_point():
    """When plugins/interlace-delaporte is pip-installed, its family is in the registry."""
    eps = [ep for ep in metadata.entry_points(group="interlace.families") if ep.name == "delaporte"]
    if not eps:
        pytest.skip("interlace-delaporte is not installed (pip install ./plugins/interlace-delaporte)")
    manager.reset()
    assert families.available()["delaporte"] == "interlace-delaporte"
    fam = interlace.family("delaporte", nu=0.25)
    assert fam.aux_blocks == ("disp", "nu") and fam.params == {"nu": 0.25}


def test_every_example_plugin_is_known():
    """Each plugins/*/ distribution is in the unknown-family hint table, and nothing else is."""
    from interlace.plugins.known import KNOWN_PLUGIN_FAMILIES

    root = Path(__file__).resolve().parents[1] / "plugins"
    dists = {p.name for p in root.iterdir() if (p / "pyproject.toml").is_file()}
    assert set(KNOWN_PLUGIN_FAMILIES.values()) == dists


# ---- issue 25 item 8: plugins cannot hijack a family or end the program ---------------------


def test_plugin_cannot_replace_a_builtin_even_with_replace(fresh, tmp_path, monkeypatch):
    _write_plugin(
        tmp_path,
        monkeypatch,
        "fake_interlace_plugin_hijack",
        """
        from interlace.plugins import hookimpl
        from interlace.families import PoissonFamily

        @hookimpl
        def interlace_register_families(registry):
            registry.add("binomial", PoissonFamily, replace=True)
            registry.add("my_family", PoissonFamily, aliases=("Gamma",), replace=True)
            registry.add("BINOMIAL", PoissonFamily, replace=True)
            registry.remove("poisson")
        """,
    )
    fresh([_ep("hijack", "fake_interlace_plugin_hijack")])
    with pytest.warns(PluginWarning) as rec:
        avail = families.available()
    texts = [str(w.message) for w in rec]
    assert any("'binomial'" in t and "reserved" in t and "'hijack'" in t for t in texts), texts
    assert any("'Gamma'" in t and "reserved" in t for t in texts), texts
    assert any("'BINOMIAL'" in t and "reserved" in t for t in texts), texts
    assert any("'poisson'" in t and "not removed" in t for t in texts), texts
    assert all(avail[n] == "interlace" for n in BUILTINS)
    assert "my_family" not in avail
    assert isinstance(interlace.family("binomial"), BinomialFamily)
    assert isinstance(interlace.family("Gamma"), GammaFamily)
    assert isinstance(interlace.family("poisson"), PoissonFamily)


@pytest.mark.parametrize("stmt, exc_name", [
    ("import sys; sys.exit(3)", "SystemExit"),
    ("raise KeyboardInterrupt", "KeyboardInterrupt"),
    ("raise ImportError('needs somelib')", "ImportError"),
])
def test_plugin_failing_at_import_is_contained(stmt, exc_name, fresh, tmp_path, monkeypatch):
    modname = f"fake_interlace_plugin_dies_{exc_name.lower()}"
    _write_plugin(tmp_path, monkeypatch, modname, stmt + "\n")
    fresh([_ep("dies", modname)])
    with pytest.warns(PluginWarning, match=f"'dies'.*failed to load.*{exc_name}"):
        avail = families.available()
    assert BUILTINS <= set(avail)
    assert isinstance(interlace.family("binomial"), BinomialFamily)


def test_plugin_exiting_in_its_hook_is_contained(fresh, tmp_path, monkeypatch):
    _write_plugin(
        tmp_path,
        monkeypatch,
        "fake_interlace_plugin_exit_hook",
        """
        import sys
        from interlace.plugins import hookimpl
        from interlace.families import PoissonFamily

        @hookimpl
        def interlace_register_families(registry):
            registry.add("exit_pois", PoissonFamily)
            sys.exit("bye")
        """,
    )
    fresh([_ep("exithook", "fake_interlace_plugin_exit_hook")])
    with pytest.warns(PluginWarning, match="'exithook'.*failed while registering.*SystemExit"):
        avail = families.available()
    assert "exit_pois" not in avail  # rolled back


def test_builtin_name_resolves_without_importing_plugins(fresh, tmp_path, monkeypatch):
    modname = "fake_interlace_plugin_marker"
    _write_plugin(
        tmp_path,
        monkeypatch,
        modname,
        """
        from interlace.plugins import hookimpl
        from interlace.families import PoissonFamily

        @hookimpl
        def interlace_register_families(registry):
            registry.add("marker_pois", PoissonFamily)
        """,
    )
    calls = fresh([_ep("marker", modname)])
    for name in ("binomial", "Gamma", "nbinom2", "POISSON"):
        interlace.family(name)
    assert calls["n"] == 0 and modname not in sys.modules
    assert isinstance(interlace.family("marker_pois"), PoissonFamily)  # a plugin name loads them
    assert calls["n"] == 1 and modname in sys.modules
    interlace.family("marker_pois")
    families.available()
    assert calls["n"] == 1


def test_plugin_that_uses_interlace_while_loading_loads_once(fresh, tmp_path, monkeypatch):
    _write_plugin(
        tmp_path,
        monkeypatch,
        "fake_interlace_plugin_reentrant",
        """
        import interlace
        from interlace.plugins import hookimpl
        from interlace.families import PoissonFamily

        KNOWN = sorted(interlace.families.available())   # re-enters the loading registry

        @hookimpl
        def interlace_register_families(registry):
            registry.add("reentrant_pois", PoissonFamily)
        """,
    )
    calls = fresh([_ep("reentrant", "fake_interlace_plugin_reentrant")])
    assert families.available()["reentrant_pois"] == "entry point 'reentrant'"
    assert calls["n"] == 1


def test_unknown_family_names_the_plugin_to_install(fresh):
    fresh([])
    with pytest.raises(ValueError) as info:
        interlace.family("skellam")
    msg = str(info.value)
    assert "interlace-skellam" in msg and "not installed" in msg
    assert "pip install ./plugins/interlace-skellam" in msg
    assert "binomial" in msg and "gamma" in msg  # the installed (built-in) ones


def test_unknown_family_lists_installed_plugins_and_known_missing_ones(fresh):
    fresh([])
    manager.register_plugin(
        types.SimpleNamespace(interlace_register_families=hookimpl(
            lambda registry: registry.add("runtime_pois", PoissonFamily))),
        name="rt", distribution="my-dist")
    with pytest.raises(ValueError) as info:
        interlace.family("no_such_family")
    msg = str(info.value)
    assert "from plugins: runtime_pois (my-dist)" in msg
    assert "known plugins not installed:" in msg and "interlace-skellam (skellam)" in msg
