"""One BLAS thread for the small dense problems a pipeline factor solves per session."""

from __future__ import annotations

import contextlib

_CONTROLLER = {}


def one_blas_thread():
    """Context manager: BLAS/LAPACK limited to one thread inside the block.

    The PCA of one window (a 252 x 500 problem) or a per-day least squares is
    a small LAPACK problem that gains little from threads, while a
    multi-threaded BLAS on a busy machine (several backtests or Dask workers
    per host) can be many times slower than one thread. Uses
    ``threadpoolctl`` and restores the previous setting on exit; a no-op
    when it is not available or finds no BLAS. It changes the process's BLAS
    thread count for the length of the block: another thread of the same
    process calling BLAS at that moment runs single-threaded too.
    """
    controller = _CONTROLLER.get("controller", False)
    if controller is False:
        try:
            from threadpoolctl import ThreadpoolController

            controller = ThreadpoolController()
        except Exception:  # not installed, or no BLAS found
            controller = None
        _CONTROLLER["controller"] = controller
    if controller is None:
        return contextlib.nullcontext()
    return controller.limit(limits=1, user_api="blas")
