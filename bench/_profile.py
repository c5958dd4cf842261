"""Where a server's CPU goes while a benchmark loads it: `py-spy` (a dev dependency) samples
the process from outside, and `top` prints the frames that were on the stack most often
(inclusive: a frame counts once per sample it appears in) and the ones that were running
(self)."""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

TOP = 20
# Frames every sample passes through (the command line, the loop, the ASGI chain): listing
# them says nothing about where a request's time goes.
WRAPPERS = (
    "typer/",
    "click/",
    "asyncio/",
    "uvicorn/",
    "starlette/",
    "fastapi/applications",
    "fastapi/middleware",
    "fastapi/_body_limit",
    "fastapi/telemetry",
    "(caretime)",
    "caretime/cli.py",
    "caretime/observability.py",
    "caretime/errors.py",
    "caretime/limits.py",
    "caretime/inputs.py",
)


class Profile:
    def __init__(self, raw: str) -> None:
        self.inclusive: Counter[str] = Counter()
        self.own: Counter[str] = Counter()
        self.samples = 0
        for line in raw.splitlines():
            stack, _, count_text = line.rpartition(" ")
            if not stack or not count_text.isdigit():
                continue
            count = int(count_text)
            frames = [_short(frame) for frame in stack.split(";")]
            self.samples += count
            for frame in set(frames):
                self.inclusive[frame] += count
            self.own[frames[-1]] += count

    def top(self, title: str) -> str:
        if not self.samples:
            return f"  profile of {title}: no samples (is py-spy installed and allowed?)"
        lines = [f"  profile of {title}: {self.samples} samples; inclusive % | self %"]
        interesting = (
            (frame, count)
            for frame, count in self.inclusive.most_common()
            if not any(wrapper in frame for wrapper in WRAPPERS)
        )
        for frame, count in list(interesting)[:TOP]:
            share = 100 * count / self.samples
            lines.append(f"    {share:5.1f} | {100 * self.own[frame] / self.samples:5.1f}  {frame}")
        lines.append("  most self time:")
        for frame, count in self.own.most_common(10):
            lines.append(f"    {100 * count / self.samples:5.1f}  {frame}")
        return "\n".join(lines)


def _short(frame: str) -> str:
    """'handler (caretime/x.py:12)' → 'handler (caretime/x.py)': one entry per function."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "src/", "lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{name} ({path})"


@contextlib.contextmanager
def sampling(pid: int, *, enabled: bool) -> Iterator[Profile]:
    """Samples `pid` for as long as the block runs; the yielded profile fills in at exit."""
    profile = Profile("")
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not enabled or not pid or not Path(spy).exists():
        yield profile
        return
    with tempfile.TemporaryDirectory(prefix="caretime-spy-") as folder:
        out = Path(folder) / "stacks.txt"
        command = [spy, "record", "--pid", str(pid), "--format", "raw", "--rate", "250"]
        command += ["--nonblocking", "--output", str(out)]
        recorder = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            yield profile
        finally:
            recorder.send_signal(signal.SIGINT)
            recorder.wait(timeout=60)
            if out.exists():
                profile.__init__(out.read_text(errors="replace"))  # type: ignore[misc]
