"""numba set-up for interlace's kernels: where the disk cache lives, what happens when it is
damaged, and a one-line notice before the first compilation.

Imported by :mod:`interlace.kernels` before any kernel is defined (so ``import interlace``
itself never loads numba).

Cache location (numba's own rules, which interlace relies on and tests): ``NUMBA_CACHE_DIR``
when set; otherwise ``__pycache__`` beside the kernel sources when that directory is writable;
otherwise (a read-only install, e.g. a system site-packages) the per-user cache directory
(``~/.cache/numba`` on Linux, ``$XDG_CACHE_HOME/numba`` when that is set).

Damaged cache: numba reads its index (``*.nbi``) and data (``*.nbc``) files with ``pickle``
and only treats a *missing* file as a miss, so a truncated or overwritten file (a disk full
during a write, two versions of a package sharing a directory) raised from deep inside the
first fit. :func:`install` makes any failure to read or rebuild a cache entry a cache miss:
the kernel is compiled again and the entry rewritten.

Example
-------
>>> install()  # idempotent
>>> install()
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Any

__all__ = ["install", "compile_notice_shown"]

_installed = False
_lock = threading.Lock()
_notice_shown = False


def compile_notice_shown() -> bool:
    """Whether this process has printed the first-compilation notice."""
    return _notice_shown


def _patch_cache() -> None:
    from numba.core import caching
    from numba.core.runtime import rtsys

    index_cls = caching.IndexDataCacheFile
    load_index, load_data = index_cls._load_index, index_cls._load_data

    def _load_index(self: Any) -> dict:
        try:
            return load_index(self)
        except Exception:  # unreadable index: behave as an empty cache (entries are rewritten)
            return {}

    def _load_data(self: Any, name: str) -> Any:
        try:
            return load_data(self, name)
        except OSError:
            raise
        except Exception as exc:  # numba's load() treats OSError as "not cached"
            raise OSError(f"unreadable numba cache file {name}") from exc

    index_cls._load_index = _load_index
    index_cls._load_data = _load_data

    cache_cls = caching.Cache

    def _load_overload(self: Any, sig: Any, target_context: Any) -> Any:
        # numba's own load_overload first calls target_context.refresh(): that imports and
        # installs every typing and lowering registry (numba.np.arraymath, the cffi
        # parser, ... about 0.3 s of CPU, most of a warm-cache first fit's numba cost).
        # Rebuilding cached machine code needs none of them, only the NRT's symbols;
        # a compilation refreshes the contexts itself (CompilerBase.__init__), and so
        # does a lowering lookup that misses (BaseContext.get_function).
        try:
            rtsys.initialize(target_context)
            with self._guard_against_spurious_io_errors():
                return self._load_overload(sig, target_context)
        except Exception:  # a readable file whose contents cannot be rebuilt: recompile
            return None

    cache_cls.load_overload = _load_overload


def _register_notice() -> None:
    from numba.core import event

    class _FirstCompileNotice(event.Listener):
        """Print one line before interlace's first kernel compilation in this process."""

        def on_start(self, ev: Any) -> None:
            global _notice_shown
            if _notice_shown or os.environ.get("INTERLACE_QUIET"):
                return
            disp = (ev.data or {}).get("dispatcher")
            func = getattr(disp, "py_func", None)
            if not getattr(func, "__module__", "").startswith("interlace."):
                return
            _notice_shown = True
            cache = getattr(getattr(disp, "_cache", None), "_cache_path", None)
            where = f", cached in {cache}" if cache else ""
            print(f"interlace: compiling numba kernels for first use (once{where}); "
                  f"this may take a minute", file=sys.stderr, flush=True)

        def on_end(self, ev: Any) -> None:
            pass

    event.register("numba:compile", _FirstCompileNotice())


def install() -> None:
    """Make damaged cache entries recompile and register the first-compile notice (once)."""
    global _installed
    with _lock:
        if _installed:
            return
        _patch_cache()
        _register_notice()
        _installed = True
