"""A Trinity run whose trainer failed is a failure (``astuner/backbone/trinity/outcome.py``).

The log lines are in trinity-rft 0.6.0's format, as its trainer wrote them on an H100 (2026-12-06).
"""

from __future__ import annotations

from astuner.backbone.trinity.outcome import log_offset, trained_steps, trainer_failure

FAILED = """\
INFO 12-06 17:11:16 [trainer.py:185] Training at step 1 started.
ERROR 12-06 17:11:16 [trainer.py:156] Error in Trainer:
ERROR 12-06 17:11:16 [trainer.py:156] Traceback (most recent call last):
ERROR 12-06 17:11:16 [trainer.py:156]   File "/tmp/site/verl/utils/attention_utils.py", line 30, in _get_attention_functions
ERROR 12-06 17:11:16 [trainer.py:156]     from flash_attn.bert_padding import index_first_axis, pad_input, rearrange, unpad_input
ERROR 12-06 17:11:16 [trainer.py:156] ModuleNotFoundError: No module named 'flash_attn'
ERROR 12-06 17:11:16 [trainer.py:156] 
INFO 12-06 17:11:16 [trainer.py:269] Saving checkpoint at step 1...
"""


def write_job(tmp_path, log: str, step: str | None = "1"):
    (tmp_path / "log").mkdir(exist_ok=True)
    (tmp_path / "log" / "trainer.log").write_text(log)
    if step is not None:
        (tmp_path / "latest_checkpointed_iteration.txt").write_text(step)
    return tmp_path


def test_a_logged_trainer_error_is_found_with_its_exception_line(tmp_path):
    job = write_job(tmp_path, FAILED)
    assert trainer_failure(job) == "ModuleNotFoundError: No module named 'flash_attn'"
    assert trained_steps(job) == 1


def test_only_this_launchs_part_of_the_log_counts(tmp_path):
    job = write_job(tmp_path, FAILED)
    offset = log_offset(job)
    with (job / "log" / "trainer.log").open("a") as f:
        f.write("INFO 12-06 18:00:00 [trainer.py:185] Training at step 2 started.\n")
    assert trainer_failure(job, offset) is None


def test_a_clean_or_missing_log_is_no_failure(tmp_path):
    assert trainer_failure(tmp_path) is None and trained_steps(tmp_path) is None and log_offset(tmp_path) == 0
    job = write_job(tmp_path, "INFO 12-06 17:11:16 [trainer.py:185] Training at step 1 started.\n", step="20")
    assert trainer_failure(job) is None and trained_steps(job) == 20


def test_an_error_without_an_exception_line_still_counts(tmp_path):
    job = write_job(tmp_path, "ERROR 12-06 17:11:16 [trainer.py:156] Error in Trainer:\n")
    assert trainer_failure(job) == "Error in Trainer"
