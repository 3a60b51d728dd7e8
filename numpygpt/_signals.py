"""How the `numpygpt` command stops on Ctrl-C (SIGINT) and on SIGTERM.

Python turns Ctrl-C into a KeyboardInterrupt raised wherever the program is.
SIGTERM (what `kill`, a job scheduler or a container runtime sends) ends the
process at once by default, with no chance to save anything. While the
command runs, `command_signals()` makes SIGTERM behave like Ctrl-C: its
handler raises `Terminated`, a subclass of KeyboardInterrupt, so every place
that stops cleanly on Ctrl-C (training writes its checkpoint) stops the same
way on SIGTERM. The command then exits with the shells' statuses:

    Ctrl-C    KeyboardInterrupt    exit status 130 = 128 + SIGINT (2)
    SIGTERM   Terminated           exit status 143 = 128 + SIGTERM (15)

Before the command's own code runs, Python is still importing numpygpt, and
an interrupt there would end in a traceback of the import machinery.
numpygpt/__init__.py imports this module first of all, which runs
`install_for_command()`: it installs the SIGTERM handler and a
`sys.excepthook` that turns such an interrupt into one line, but only when
the process *is* the numpygpt command (the console script or `python -m
numpygpt`); importing numpygpt in a program of your own changes nothing.
A closed pipe on stdout (`numpygpt tour | head`) ends the command quietly
with status 141 = 128 + SIGPIPE, as shells report it.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType, TracebackType

EXIT_ERROR = 2            # bad input or a failed command (argparse's status for a usage error)
EXIT_INTERRUPTED = 130    # 128 + SIGINT
EXIT_TERMINATED = 143     # 128 + SIGTERM
EXIT_BROKEN_PIPE = 141    # 128 + SIGPIPE: what a shell reports for a writer whose reader has gone


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, as Ctrl-C raises KeyboardInterrupt."""


def raise_terminated(signum: int, frame: FrameType | None) -> None:
    """The SIGTERM handler while the command runs: stop as on Ctrl-C."""
    raise Terminated


def exit_status(interrupt: BaseException) -> int:
    """130 for Ctrl-C, 143 for SIGTERM."""
    return EXIT_TERMINATED if isinstance(interrupt, Terminated) else EXIT_INTERRUPTED


def describe(interrupt: BaseException) -> str:
    """How an interrupt is reported: "interrupted" (Ctrl-C) or "terminated (SIGTERM)"."""
    return "terminated (SIGTERM)" if isinstance(interrupt, Terminated) else "interrupted"


@contextlib.contextmanager
def command_signals() -> Iterator[None]:
    """For the block: Ctrl-C raises KeyboardInterrupt (Python's handler) and SIGTERM raises
    `Terminated`. The previous handlers come back afterwards, so `cli.main([...])` called
    from a program or a test leaves its signal handling as it was. Only the main thread
    can set handlers; in another thread nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, handler) for sig, handler in (
        (signal.SIGINT, signal.default_int_handler), (signal.SIGTERM, raise_terminated))}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


# ----------------------------------------------------------------------------- while numpygpt is imported


def running_as_command() -> bool:
    """True in the `numpygpt` console script and in `python -m numpygpt` (or `-m numpygpt.cli`)."""
    script = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if script in ("numpygpt", "numpygpt.exe", "numpygpt-script.py"):
        return True
    argv = list(getattr(sys, "orig_argv", []))  # the interpreter's own arguments (Python >= 3.10)
    return any(a == "-m" and b in ("numpygpt", "numpygpt.cli") for a, b in itertools.pairwise(argv)) \
        or "-mnumpygpt" in argv


def _one_line_excepthook(previous):  # type: ignore[no-untyped-def]
    """An excepthook that reports an interrupt as one line and exits 130 / 143; any other
    uncaught exception goes to `previous` (Python's traceback)."""
    def hook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        if not issubclass(exc_type, KeyboardInterrupt):
            previous(exc_type, exc, tb)
            return
        print(f"numpygpt: {describe(exc)}", file=sys.stderr)
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(exit_status(exc))  # the process is ending; nothing of numpygpt's is running yet
    return hook


def install_for_command() -> None:
    """When this process is the numpygpt command: SIGTERM raises `Terminated`, and an
    interrupt that no code catches (one during the imports) is reported in one line."""
    if not running_as_command() or threading.current_thread() is not threading.main_thread():
        return
    signal.signal(signal.SIGTERM, raise_terminated)
    sys.excepthook = _one_line_excepthook(sys.excepthook)


install_for_command()  # on import, so that numpygpt/__init__.py needs one line: see the module docstring
