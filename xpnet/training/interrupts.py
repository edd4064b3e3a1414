"""Signals during training: the first SIGINT, SIGTERM or SIGHUP ends the run after the epoch.

What Slurm, Kubernetes and systemd send (SIGTERM, SIGHUP) behaves like a first Ctrl-C:
:func:`xpnet.fit` finishes the current epoch, stops and says so (``FitResult.interrupted``,
``FitResult.signal``); a second Ctrl-C interrupts at once.
"""

from __future__ import annotations

import signal
import threading


class Interrupt:
    """Whether a stop signal has arrived, and which."""

    seen = False
    signal: int | None = None


STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


class deferred_interrupt:
    """Within the block, a first SIGINT, SIGTERM or SIGHUP only sets ``state.seen`` (the loop stops
    after the epoch); a second SIGINT raises KeyboardInterrupt at once. Outside the main thread:
    no change."""

    def __init__(self, state: Interrupt | None = None):
        self.state = Interrupt() if state is None else state

    def __enter__(self):
        self.previous: dict = {}
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self.previous[sig] = signal.signal(sig, self._handle)
        return self.state

    def _handle(self, signum, frame):
        if self.state.seen and signum == signal.SIGINT:
            raise KeyboardInterrupt
        if not self.state.seen:
            self.state.seen, self.state.signal = True, signum

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        return False
