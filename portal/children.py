"""Child processes that never outlive their parent."""

from __future__ import annotations

import ctypes
import signal

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Ask the kernel for SIGTERM when our parent ends (even by SIGKILL); Linux only.

    Call it in the child: as a ``preexec_fn`` or after ``fork``. It follows the
    parent *thread* that started the child, so start children from the main thread.
    """
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass
