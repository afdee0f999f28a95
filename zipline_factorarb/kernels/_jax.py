"""Small JAX helpers shared by the JAX kernels.

Nothing here runs at import time: JAX itself is imported on first use, and no
JAX configuration value is ever changed globally.

Double precision
----------------
JAX computes in float32 unless the ``jax_enable_x64`` option is on, and that
option is process-wide when set with ``jax.config.update``. A library must not
flip it for its user: every float array the user creates afterwards would
silently become float64 (twice the memory, different numerics, recompiled
functions). :func:`x64_scope` therefore returns JAX's *context manager*
``jax.enable_x64(True)`` (available as a top-level context manager in current
JAX; older releases offered it as ``jax.experimental.enable_x64()``, used here
as a fallback). The context manager sets a thread-local override of the option
and restores the previous value on exit, so

* only code running inside the ``with`` block, in the current thread, sees
  float64 defaults;
* the option is part of ``jax.jit``'s cache key, so a function traced inside
  the block is compiled as a float64 program, and a later call outside the
  block cannot reuse (or be polluted by) that executable.

The kernels enter the block around argument conversion, tracing, compilation
and execution, and leave it only after the results are copied to numpy.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "aligned_full",
    "bucket_size",
    "import_jax",
    "x64_scope",
]

#: byte alignment of host buffers handed to JAX (see :func:`aligned_full`)
HOST_ALIGNMENT = 64


def import_jax():
    """Import and return ``(jax, jax.numpy, jax.lax)`` (lazily, on first use)."""
    import jax
    import jax.numpy as jnp
    from jax import lax

    return jax, jnp, lax


def x64_scope():
    """Context manager enabling float64 in JAX for the current thread only.

    Returns
    -------
    contextlib.AbstractContextManager
        ``jax.enable_x64(True)``, or ``jax.experimental.enable_x64()`` on
        JAX releases that only have the experimental spelling. Both restore
        the previous value of ``jax_enable_x64`` on exit.
    """
    import jax

    ctx = getattr(jax, "enable_x64", None)
    if ctx is not None and callable(ctx):
        return ctx(True)
    from jax.experimental import enable_x64  # older JAX releases

    return enable_x64()


def bucket_size(n, minimum):
    """Round ``n`` up to a padded size so that nearby sizes share one shape.

    Sizes are rounded up to a multiple of ``max(minimum, 2**(floor(log2 n) - 3))``:
    a fixed step of ``minimum`` for small sizes, then steps of about 1/8 of the
    size, so padding wastes at most ``minimum - 1`` or ~12.5% of the work and
    the number of distinct shapes (one compilation each) grows only
    logarithmically with the size.

    Parameters
    ----------
    n : int
        True size (>= 0).
    minimum : int
        Smallest step, and smallest padded size for ``n >= 1``.

    Returns
    -------
    int
        The padded size (``0`` for ``n == 0``).

    Examples
    --------
    >>> [bucket_size(n, 64) for n in (1, 37, 45, 64, 65, 500, 2000)]
    [64, 64, 64, 64, 128, 512, 2048]
    """
    n = int(n)
    if n <= 0:
        return 0
    step = max(int(minimum), 1 << max(int(math.floor(math.log2(n))) - 3, 0))
    return -(-n // step) * step


def aligned_full(shape, fill=None, dtype=np.float64):
    """A new array filled with ``fill`` (uninitialised if None), 64-byte aligned.

    JAX's CPU client can use an aligned numpy buffer in place instead of
    copying it into a device buffer, which saves ~0.1 ms per megabyte on each
    call. The kernels fill such a buffer with the padded inputs (a copy they
    own, so aliasing it is safe).

    Parameters
    ----------
    shape : tuple of int
    fill : float or None
    dtype : numpy dtype

    Returns
    -------
    ndarray
        C-contiguous, writeable, ``ctypes.data % 64 == 0``.
    """
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    raw = np.empty(nbytes + HOST_ALIGNMENT, dtype=np.uint8)
    offset = (-raw.ctypes.data) % HOST_ALIGNMENT
    out = raw[offset : offset + nbytes].view(dtype).reshape(shape)
    if fill is not None:
        out.fill(fill)
    return out
