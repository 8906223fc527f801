"""GSM8K's answer convention: a worked solution whose last line is ``#### <final answer>``.

Judges compare the model's final answer against this reference; it lives in a GSM8K task's
``metadata["answer"]`` (the Hugging Face reader keeps the whole row as metadata).
"""

from __future__ import annotations


def gsm8k_reference(answer_text: str) -> str:
    """Return the final answer of a GSM8K solution: the stripped text after the last ``####``.

    The *last* marker is used because a solution may mention ``####`` earlier in its working.
    Raises ValueError when there is no marker, rather than guessing a reference that every
    rollout would then be judged against.
    """
    head, marker, tail = answer_text.rpartition("####")
    if not marker:
        preview = answer_text.strip().replace("\n", " ")[:80]
        raise ValueError(f"GSM8K answer has no '####' marker: {preview!r}")
    return tail.strip()
