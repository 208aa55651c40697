"""One BLAS thread while a fit runs (threadpoolctl), re-entrant across threads
and nested fits. Imports nothing from the package.
"""

from __future__ import annotations

import threading
from typing import Any

__all__ = ["blas_single_thread"]

_CONTROLLER = None
_BLAS_LOCK = threading.Lock()
_BLAS_STATE: dict[str, Any] = {"depth": 0, "limiter": None, "owner": None, "took": False}


class _BlasSingleThread:
    """Re-entrant, thread-safe BLAS limit: the first fit to enter sets one
    thread, the last one to leave restores what the process had before.

    threadpoolctl's context restores the limits it saw on entry, and for a
    process-wide OpenBLAS pool only one "controlling" Python thread may set
    limits (others are silently ignored). Two overlapping fits in threads
    (A enters, B enters and sees A's limit, A leaves, B leaves) used to leave
    the whole process at one BLAS thread. Here one limiter is shared by all
    running fits, and the last fit to leave restores it, taking over control
    from the thread that set the limit when that is another thread.
    """

    def __enter__(self):
        global _CONTROLLER
        with _BLAS_LOCK:
            if _BLAS_STATE["depth"] == 0:
                if _CONTROLLER is None:
                    from threadpoolctl import ThreadpoolController

                    _CONTROLLER = ThreadpoolController()
                before = _controlling_thread()
                _BLAS_STATE["limiter"] = _CONTROLLER.limit(limits=1, user_api="blas")
                _BLAS_STATE["owner"] = threading.current_thread()
                # we took control of OpenBLAS (nobody held it): give it back when done
                _BLAS_STATE["took"] = before is None and _controlling_thread() is threading.current_thread()
            _BLAS_STATE["depth"] += 1
        return self

    def __exit__(self, *exc):
        with _BLAS_LOCK:
            _BLAS_STATE["depth"] -= 1
            if _BLAS_STATE["depth"] == 0 and _BLAS_STATE["limiter"] is not None:
                limiter, _BLAS_STATE["limiter"] = _BLAS_STATE["limiter"], None
                owner, _BLAS_STATE["owner"] = _BLAS_STATE["owner"], None
                if _BLAS_STATE["took"] and threading.current_thread() is not owner:
                    _clear_controlling_thread(force=True)  # the owner's control was ours
                limiter.restore_original_limits()
                if _BLAS_STATE["took"]:
                    _clear_controlling_thread(force=True)
        return False


def _controlling_thread():
    """The thread threadpoolctl lets set OpenBLAS's process-wide limit (None: any)."""
    try:
        from threadpoolctl import OpenBLASController

        return OpenBLASController._SHARED_STATE.controlling_thread
    except (ImportError, AttributeError):  # threadpoolctl < 3.8: any thread may set
        return None


def _clear_controlling_thread(force: bool) -> None:
    try:
        from threadpoolctl import OpenBLASController

        OpenBLASController.clear_controlling_thread(force=force)
    except (ImportError, AttributeError):
        pass


def blas_single_thread() -> _BlasSingleThread:
    """Limit BLAS to one thread during a fit: the dense blocks are small, and
    OpenBLAS's threads oversubscribe them (measured 30x slower on 2 cores
    under load). threadpoolctl earns its place here. Re-entrant across threads
    and nested calls (see :class:`_BlasSingleThread`).

    >>> with blas_single_thread():
    ...     pass
    """
    return _BlasSingleThread()
