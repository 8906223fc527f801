"""Shared fixtures: real Qwen tokenizers (when present), the tiny model, a replaying engine."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

os.environ.setdefault("AGENTSCOPE_DISABLE_CONSOLE_OUTPUT", "true")
# One torch/OpenMP thread in the tests and every process they start: CI's 2 cores may be shared, and
# with a core busy a 2-thread torch step ran 2.65x slower than idle where a 1-thread step ran 1.18x
# (measured for the miniature's model; docs/benchmarks.md, "CI").
os.environ.setdefault("OMP_NUM_THREADS", "1")
# Tests that press Ctrl-C on a child (SIGINT) need the child to take it. A shell that starts `.ci/run`
# in the background with job control off starts it with SIGINT ignored, an ignored signal stays
# ignored across exec, and Python then never raises KeyboardInterrupt. A handled signal is reset to
# the default in children, so handle it here (the handler is Python's own).
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

REPO = Path(__file__).resolve().parent.parent

pytest_plugins = ["tests.tiers", "tests.miniature"]


def shared_path(env: str, relative: str) -> Path:
    """A shared data folder: from ``env`` if set, else ``../shared/<relative>`` next to the repo."""
    value = os.environ.get(env)
    return Path(value) if value else REPO.parent / "shared" / relative


def tokenizer_dir(name: str) -> Path:
    path = shared_path("ASTUNER_TEST_TOKENIZERS", "tokenizers") / name
    if not (path / "tokenizer.json").exists():
        pytest.skip(f"real {name} tokenizer not found at {path} (set ASTUNER_TEST_TOKENIZERS)")
    return path


@pytest.fixture(scope="session")
def qwen25_tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tokenizer_dir("qwen2_5")))


@pytest.fixture(scope="session")
def qwen3_tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tokenizer_dir("qwen3")))


@pytest.fixture(scope="session")
def gsm8k_dir() -> Path:
    path = shared_path("ASTUNER_TEST_GSM8K", "data/gsm8k")
    if not path.exists():
        pytest.skip(f"GSM8K not found at {path} (set ASTUNER_TEST_GSM8K)")
    return path


@pytest.fixture(scope="session")
def tiny_tokenizer(tmp_path_factory):
    """The tokenizer of astuner's tiny offline model (Qwen2.5-style tools template)."""
    from transformers import AutoTokenizer

    from astuner.tiny_model import build_tiny_model

    return AutoTokenizer.from_pretrained(str(build_tiny_model(tmp_path_factory.mktemp("tiny"))))
