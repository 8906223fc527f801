"""Checkpoints of the local backbone: everything needed to continue a run exactly where it was.

``<exp dir>/checkpoints/step_<N>/`` holds the weights (a loadable Hugging Face directory with the
tokenizer, or a LoRA adapter), the optimizer state, and ``state.json`` (step, data cursor, RNG
states). A checkpoint is written to a temporary directory and renamed into place, and
``checkpoints/latest`` is replaced atomically after that, so a run killed at any moment (SIGKILL
included) leaves the previous checkpoint intact. Only the newest ``keep`` checkpoints are kept.
Finding checkpoints needs no torch (it is imported where state is saved or loaded), so the CLI
can choose the run to resume before any heavy import.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

LATEST = "latest"
DONE_MARKER = "DONE"
"""File the local backbone writes into a run's folder when the run finished (it holds the last step)."""


def checkpoint_root(exp_dir: Path) -> Path:
    return exp_dir / "checkpoints"


def latest_checkpoint(exp_dir: Path) -> Path | None:
    """The newest complete checkpoint of a run, or None (also for a folder that does not exist)."""
    pointer = checkpoint_root(exp_dir) / LATEST
    if not pointer.exists():
        return None
    path = checkpoint_root(exp_dir) / pointer.read_text().strip()
    return path if (path / "state.json").exists() else None


def rng_state() -> dict[str, Any]:
    import torch

    state: dict[str, Any] = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    import torch

    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(exp_dir: Path, step: int, model: Any, tokenizer: Any, optimizer: Any, state: dict, keep: int = 2) -> Path:
    import torch

    root = checkpoint_root(exp_dir)
    root.mkdir(parents=True, exist_ok=True)
    name = f"step_{step}"
    tmp = root / f".tmp-{name}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    model.save_pretrained(tmp / "model")
    tokenizer.save_pretrained(tmp / "model")
    torch.save({"optimizer": optimizer.state_dict(), "rng": rng_state()}, tmp / "trainer.pt")
    (tmp / "state.json").write_text(json.dumps({**state, "step": step}, indent=2))
    final = root / name
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    pointer_tmp = root / f".{LATEST}.tmp"
    pointer_tmp.write_text(name)
    os.replace(pointer_tmp, root / LATEST)
    steps = sorted((p for p in root.glob("step_*") if p.is_dir()), key=lambda p: int(p.name.split("_")[1]))
    for old in steps[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_trainer_state(path: Path, optimizer: Any) -> dict:
    """Restore optimizer and RNG from a checkpoint; returns its ``state.json``."""
    import torch

    blob = torch.load(path / "trainer.pt", map_location="cpu", weights_only=False)
    optimizer.load_state_dict(blob["optimizer"])
    set_rng_state(blob["rng"])
    return json.loads((path / "state.json").read_text())
