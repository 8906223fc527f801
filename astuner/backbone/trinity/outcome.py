"""Whether a Trinity run that says it succeeded really trained: its trainer's log and step count.

Why: Trinity-RFT 0.6.0's trainer catches any exception of a training step, logs "Error in Trainer"
with the traceback, saves a checkpoint and returns normally, and ``both`` then reports success: a
run whose trainer fails at step 1 (``flash_attn`` missing, say) would end with "Trinity finished"
and exit 0 (docs/results/trinity_gpu.md). ``trainer_failure`` reads the part of the trainer's log
written during this launch (``<checkpoint_job_dir>/log/trainer.log``, appended across resumed runs,
so only bytes past ``log_offset`` count) and returns the exception line, so the launch can exit 1
with it.

Not guaranteed: an error Trinity logs in another format, or in another actor's log, is not seen
here; the explorer's own failures already make ``both`` report failure.
"""

from __future__ import annotations

import re
from pathlib import Path

TRAINER_ERROR = "Error in Trainer"
_PREFIX = re.compile(r"^(?:\S+ )?ERROR \S+ \S+ \[[^\]]+\] ?")


def trainer_log(job_dir: Path) -> Path:
    return Path(job_dir) / "log" / "trainer.log"


def log_offset(job_dir: Path) -> int:
    """The trainer log's size now (0 when absent): where this launch's lines will start."""
    path = trainer_log(job_dir)
    return path.stat().st_size if path.exists() else 0


def trainer_failure(job_dir: Path, offset: int = 0) -> str | None:
    """The exception line of the first trainer error logged past ``offset``, or None."""
    path = trainer_log(job_dir)
    if not path.exists():
        return None
    with path.open("rb") as f:
        f.seek(offset)
        text = f.read().decode("utf-8", "replace")
    start = text.find(TRAINER_ERROR)
    if start < 0:
        return None
    lines = [_PREFIX.sub("", line).strip() for line in text[start:].splitlines()[1:]]
    traceback = []
    for line in lines:
        if not line and traceback:
            break
        traceback.append(line)
    found = [line for line in traceback if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt)\b", line)]
    return found[-1] if found else TRAINER_ERROR


def trained_steps(job_dir: Path) -> int | None:
    """The last step the trainer checkpointed (``latest_checkpointed_iteration.txt``), or None."""
    path = Path(job_dir) / "latest_checkpointed_iteration.txt"
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None
