"""Named crash points for crash-recovery tests: `WEIKA_FAULTS=name[,name]` kills the process there (SIGKILL).

Production never sets the variable; the check is one frozenset lookup.
"""

from __future__ import annotations

import os
import signal

_ACTIVE = frozenset(f for f in os.environ.get("WEIKA_FAULTS", "").split(",") if f)


def crash_point(name: str) -> None:
    if name in _ACTIVE:
        os.kill(os.getpid(), signal.SIGKILL)
