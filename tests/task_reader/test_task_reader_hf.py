"""The Hugging Face dataset reader (``huggingface_dat_repo``): GSM8K from a local directory, the
config and split it picks, its error paths, ``gsm8k_reference``, seeded shuffling of GSM8K, and the
download script (its offline failure, and its check of a download).

Nothing here touches the network: the GSM8K copy is local (``ASTUNER_TEST_GSM8K`` or
``../shared/data/gsm8k`` next to the repo), and Hub-bound code runs in subprocesses with
``HF_HUB_OFFLINE=1``. Task files, dummy tasks and config errors: ``test_task_reader_files.py``.
"""

from __future__ import annotations

import importlib.util
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from astuner.config.schema import TaskReaderConfig
from astuner.schema import Task
from astuner.task_reader import TaskReaderError, build_task_reader, gsm8k_reference
from tests.conftest import REPO

pytestmark = pytest.mark.integration

DOWNLOAD_SCRIPT = REPO / "scripts" / "download_dataset.py"
GSM8K = Path(os.environ.get("ASTUNER_TEST_GSM8K") or REPO.parent / "shared" / "data" / "gsm8k").resolve()
needs_gsm8k = pytest.mark.skipif(
    not (GSM8K / "main").is_dir(), reason=f"GSM8K copy not found at {GSM8K} (set ASTUNER_TEST_GSM8K)"
)


def hf_data(path: str | Path, name: str | None = "main", train: str = "train", val: str = "test") -> dict:
    """The ``task_reader`` block as a config file holds it."""
    return {
        "type": "huggingface_dat_repo",
        "huggingface_dat_repo": {
            "dataset_path": str(path),
            "dataset_name": name,
            "training_split": train,
            "validation_split": val,
        },
    }


def hf_cfg(path: str | Path, name: str | None = "main", train: str = "train", val: str = "test") -> TaskReaderConfig:
    return TaskReaderConfig.model_validate(hf_data(path, name, train, val))


def ids(tasks: list[Task]) -> list[str]:
    return [t.task_id for t in tasks]


def run_offline(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf_home")}
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120
    )


@pytest.fixture(scope="module")
def gsm8k_tasks() -> tuple[list[Task], list[Task]]:
    reader = build_task_reader(hf_cfg(GSM8K), shuffle=False)
    return reader.get_training_tasks(), reader.get_validation_tasks()


@needs_gsm8k
def test_gsm8k_row_counts_and_task_mapping(gsm8k_tasks):
    train, test = gsm8k_tasks
    assert (len(train), len(test)) == (7473, 1319)
    first = train[0]
    assert first.task_id == "0"
    assert first.main_query.startswith("Natalia sold clips")
    assert first.init_messages == []
    assert first.env_type == "no_env"
    assert set(first.metadata) == {"question", "answer"}
    assert first.metadata["question"] == first.main_query
    assert gsm8k_reference(first.metadata["answer"]) == "72"
    assert ids(train[:3]) == ["0", "1", "2"]
    assert first.first_messages() == [{"role": "user", "content": first.main_query}]


@needs_gsm8k
def test_gsm8k_every_answer_has_a_reference(gsm8k_tasks):
    train, test = gsm8k_tasks
    references = [gsm8k_reference(t.metadata["answer"]) for t in train + test]
    assert all(references)
    assert gsm8k_reference(test[0].metadata["answer"]) == "18"


@needs_gsm8k
def test_gsm8k_config_folder_without_dataset_name(capsys):
    """Upstream's YAML points dataset_path at the ``main/`` folder and names no config (its only
    config is the default, so no note). An empty validation split means no validation tasks."""
    reader = build_task_reader(hf_cfg(GSM8K / "main", name=""), shuffle=False)
    tasks = reader.get_validation_tasks()
    assert len(tasks) == 1319
    assert gsm8k_reference(tasks[0].metadata["answer"]) == "18"
    assert "astuner: note" not in capsys.readouterr().err
    assert build_task_reader(hf_cfg(GSM8K, val="")).get_validation_tasks() == []


@needs_gsm8k
def test_gsm8k_loads_with_hub_offline(tmp_path):
    code = (
        "from astuner.config.schema import TaskReaderConfig\n"
        "from astuner.task_reader import build_task_reader\n"
        f"cfg = TaskReaderConfig.model_validate({hf_data(GSM8K)!r})\n"
        "r = build_task_reader(cfg)\n"
        "print(len(r.get_training_tasks()), len(r.get_validation_tasks()))\n"
    )
    result = run_offline(["-c", code], tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["7473", "1319"]


@needs_gsm8k
@pytest.mark.parametrize("name", ["", None])
def test_hf_without_config_name_uses_the_first_listed_config_with_a_note(name, capsys):
    """The GSM8K repository has configs main and socratic and no default: main is read, and said."""
    reader = build_task_reader(hf_cfg(GSM8K, name=name), shuffle=False)
    train = reader.get_training_tasks()
    assert len(train) == 7473 and gsm8k_reference(train[0].metadata["answer"]) == "72"
    assert "####" in train[0].metadata["answer"] and "**" not in train[0].metadata["answer"]
    assert len(reader.get_validation_tasks()) == 1319
    err = capsys.readouterr().err
    assert err.count("has configs main, socratic and no default; using 'main'") == 1


@needs_gsm8k
@pytest.mark.parametrize(("path", "name", "available"), [("", "nope", "['main', 'socratic']"), ("main", "main", "['default']")])
def test_hf_unknown_config_name_lists_configs(path, name, available):
    """A named config must exist; upstream's main/ folder named as 'main' was the seed YAML's failure."""
    where = GSM8K / path if path else GSM8K
    with pytest.raises(TaskReaderError) as err:
        build_task_reader(hf_cfg(where, name=name)).get_training_tasks()
    message = str(err.value)
    assert str(where) in message and "split 'train'" in message and f"config {name}" in message
    assert f"Available: {available}" in message
    assert "\n" not in message


@needs_gsm8k
def test_hf_unknown_split_names_path_config_and_split():
    with pytest.raises(TaskReaderError) as err:
        build_task_reader(hf_cfg(GSM8K, val="validation")).get_validation_tasks()
    message = str(err.value)
    assert str(GSM8K) in message and "config main" in message and "split 'validation'" in message


def test_hf_missing_question_column_names_columns(tmp_path):
    data = tmp_path / "ds"
    data.mkdir()
    table = pa.table({"prompt": ["a", "b"], "answer": ["1", "2"]})
    pq.write_table(table, data / "train-00000-of-00001.parquet")
    with pytest.raises(TaskReaderError) as err:
        build_task_reader(hf_cfg(data, name="")).get_training_tasks()
    message = str(err.value)
    assert "'question'" in message and "['answer', 'prompt']" in message and str(data) in message


def test_hf_missing_local_directory(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(TaskReaderError, match="does not exist") as err:
        build_task_reader(hf_cfg(missing)).get_training_tasks()
    assert str(missing) in str(err.value)


def test_hf_hub_id_offline_points_at_download_script(tmp_path):
    code = (
        "from astuner.config.schema import TaskReaderConfig\n"
        "from astuner.task_reader import build_task_reader, TaskReaderError\n"
        f"cfg = TaskReaderConfig.model_validate({hf_data('openai/gsm8k')!r})\n"
        "try:\n"
        "    build_task_reader(cfg).get_training_tasks()\n"
        "except TaskReaderError as e:\n"
        "    print(e)\n"
    )
    result = run_offline(["-c", code], tmp_path)
    assert result.returncode == 0, result.stderr
    message = result.stdout.strip()
    assert "'openai/gsm8k'" in message and "config main" in message and "split 'train'" in message
    assert "HF_HUB_OFFLINE" in message and "scripts/download_dataset.py" in message
    assert "\n" not in message


def test_gsm8k_reference_uses_last_marker_and_strips():
    assert gsm8k_reference("step 1\nstep 2\n#### 42") == "42"
    assert gsm8k_reference("a #### 1\nb ####  1,000 \n") == "1,000"
    with pytest.raises(ValueError, match="no '####'"):
        gsm8k_reference("the answer is 5")


@needs_gsm8k
def test_gsm8k_shuffle_reproducible(gsm8k_tasks):
    train, _ = gsm8k_tasks
    reader = build_task_reader(hf_cfg(GSM8K), seed=42)
    shuffled = reader.get_training_tasks()
    expected = list(train)
    random.Random(42).shuffle(expected)
    assert ids(shuffled) == ids(expected)
    assert ids(build_task_reader(hf_cfg(GSM8K), seed=1).get_training_tasks()) != ids(shuffled)


def test_download_script_help(tmp_path):
    result = run_offline([str(DOWNLOAD_SCRIPT), "--help"], tmp_path)
    assert result.returncode == 0
    assert "--target" in result.stdout and "--path" in result.stdout


def test_download_script_offline_fails_with_one_line(tmp_path):
    target_dir = tmp_path / "gsm8k"
    result = run_offline([str(DOWNLOAD_SCRIPT), "--target=openai/gsm8k", f"--path={target_dir}"], tmp_path)
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "cannot reach the Hugging Face Hub" in lines[0]
    assert str(target_dir) in lines[0]
    assert "Traceback" not in result.stderr + result.stdout


@needs_gsm8k
def test_download_script_verifies_gsm8k(tmp_path, monkeypatch, capsys):
    """With the download stubbed by a copy of the local GSM8K (its README declares the configs,
    as the Hub repo's does), the script's check passes."""
    import huggingface_hub

    def fake_snapshot_download(repo_id: str, repo_type: str, local_dir: str) -> str:
        assert (repo_id, repo_type) == ("openai/gsm8k", "dataset")
        shutil.copytree(GSM8K, local_dir, ignore=shutil.ignore_patterns("*.jsonl"))
        return local_dir

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    spec = importlib.util.spec_from_file_location("download_dataset", DOWNLOAD_SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.main(["--target=openai/gsm8k", f"--path={tmp_path / 'dl'}"]) == 0
    out = capsys.readouterr().out
    assert "main/train: 7473 rows" in out and "main/test: 1319 rows" in out
    assert "#### 72" in out
