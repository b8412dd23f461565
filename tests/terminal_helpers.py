"""Run ``python -m tufrepo`` on a real pseudo-terminal and answer its prompts."""

from __future__ import annotations

import os
import pty
import select
import signal
import sys
import time
from pathlib import Path

from tests.git_helpers import GIT_ENV


def on_terminal(
    *args: str,
    answers: list[tuple[str, str]],
    cwd: Path,
    env: dict[str, str | None] | None = None,
    timeout: float = 90,
) -> tuple[int, str]:
    """(exit code, everything the terminal showed); each answer is typed once its prompt
    text appeared, in order; ``env`` values None are unset. The process is killed (SIGKILL)
    after ``timeout`` seconds."""
    merged = {**os.environ, **GIT_ENV, "TERM": "dumb", **(env or {})}
    full_env = {k: v for k, v in merged.items() if v is not None}
    pid, fd = pty.fork()
    if pid == 0:  # the child: tufrepo with the pty as its controlling terminal
        os.chdir(cwd)
        os.execve(sys.executable, [sys.executable, "-m", "tufrepo", *args], full_env)  # noqa: S606
    out, seen, pending = b"", 0, list(answers)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
            if pending and (at := out.find(pending[0][0].encode(), seen)) >= 0:
                seen = at + len(pending[0][0])
                os.write(fd, pending.pop(0)[1].encode() + b"\n")
        else:
            os.kill(pid, signal.SIGKILL)
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    return os.waitstatus_to_exitcode(status), out.decode(errors="replace")
