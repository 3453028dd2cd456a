"""Keep a CPU training process's freed memory for reuse instead of handing it back to the kernel.

A training step on a CPU allocates and frees the same large tensors every step (the logits
[B, T, vocab], their gradient, the attention weights). glibc's malloc serves the large ones with
fresh ``mmap`` calls (above its threshold, which adapts between 128 KB and 32 MB) and gives the
freed top of its heap back to the kernel (trim), so every step page-faults the same memory in
again and the kernel zeroes it. Measured on the tiny model (sft, batch 16, 1 thread, 20 steps):
450k page faults and a third of the CPU time in the kernel; with the settings below 75k faults and
1.6x the trained tokens per CPU second (``benchmarks/sft_throughput.py`` runs with them too).

The settings are process-wide and only keep memory the process already used: at most
``TRIM_THRESHOLD`` of freed heap stays mapped.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger("medalign.alignment.cpu_memory")

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3   # glibc <malloc.h>
MMAP_THRESHOLD = 32 << 20      # glibc's maximum: blocks up to 32 MB come from the heap
TRIM_THRESHOLD = 1 << 30       # keep up to 1 GB of freed memory at the top of the heap
TOP_PAD = 256 << 20            # grow the heap in 256 MB steps (untouched pages cost no memory)

_done: bool | None = None


def keep_freed_memory() -> bool:
    """Tune glibc malloc as above (once per process); False where libc is not glibc (no-op)."""
    global _done
    if _done is None:
        _done = _mallopt({M_MMAP_THRESHOLD: MMAP_THRESHOLD, M_TRIM_THRESHOLD: TRIM_THRESHOLD, M_TOP_PAD: TOP_PAD})
    return _done


def _mallopt(settings: dict[int, int]) -> bool:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        libc = None
    if libc is None or not hasattr(libc, "mallopt") or not hasattr(libc, "gnu_get_libc_version"):
        log.info("libc is not glibc: malloc settings left as they are")
        return False
    ok = all(libc.mallopt(param, value) == 1 for param, value in settings.items())
    log.info("glibc malloc keeps freed memory for reuse: %s", "set" if ok else "refused")
    return ok
