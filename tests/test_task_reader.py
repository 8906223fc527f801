"""Task readers: GSM8K from a local Hugging Face directory, JSONL/parquet files, dummy tasks,
seeded shuffling, every error path, and the download script's offline failure.

Nothing here touches the network: the GSM8K copy is local (``ASTUNER_TEST_GSM8K`` or
``../shared/data/gsm8k`` next to the repo), and Hub-bound code runs in subprocesses with
``HF_HUB_OFFLINE=1``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from astuner.schema import Task
from astuner.task_reader import (
    DatasetFileTaskReader,
    RandomDummyTaskReader,
    ShuffledTaskReader,
    TaskReader,
    TaskReaderError,
    build_task_reader,
    gsm8k_reference,
    read_task_file,
)

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parent.parent
DOWNLOAD_SCRIPT = REPO / "scripts" / "download_dataset.py"
GSM8K = Path(os.environ.get("ASTUNER_TEST_GSM8K") or REPO.parent / "shared" / "data" / "gsm8k").resolve()
needs_gsm8k = pytest.mark.skipif(
    not (GSM8K / "main").is_dir(), reason=f"GSM8K copy not found at {GSM8K} (set ASTUNER_TEST_GSM8K)"
)


def hf_cfg(path: str | Path, name: str = "main", train: str = "train", val: str = "test") -> dict:
    return {
        "type": "huggingface_dat_repo",
        "huggingface_dat_repo": {
            "dataset_path": str(path),
            "dataset_name": name,
            "training_split": train,
            "validation_split": val,
        },
    }


def file_cfg(train: str | Path = "", val: str | Path = "", key: str = "jsonl_dataset_file") -> dict:
    block = {"training": {"file_path": str(train)}, "validation": {"file_path": str(val)}}
    return {"type": key, key: block}


def write_jsonl(path: Path, lines: list) -> Path:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


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
        "from astuner.task_reader import build_task_reader\n"
        f"cfg = {hf_cfg(GSM8K)!r}\n"
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
        "from astuner.task_reader import build_task_reader, TaskReaderError\n"
        f"cfg = {hf_cfg('openai/gsm8k')!r}\n"
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


def test_shuffle_is_seeded_and_leaves_global_random_alone():
    cfg = {"type": "random_dummy"}
    random.seed(123)
    state = random.getstate()
    first = ids(build_task_reader(cfg, seed=7).get_training_tasks())
    again = ids(build_task_reader(cfg, seed=7).get_training_tasks())
    other = ids(build_task_reader(cfg, seed=8).get_training_tasks())
    assert random.getstate() == state
    assert first == again
    assert first != other
    assert sorted(first, key=int) == [str(i) for i in range(1000)]
    assert first != [str(i) for i in range(1000)]


def test_shuffle_applies_to_both_lists_and_is_stable_across_calls():
    reader = build_task_reader({"type": "random_dummy"}, seed=3)
    assert isinstance(reader, ShuffledTaskReader)
    assert ids(reader.get_training_tasks()) == ids(reader.get_training_tasks())
    assert ids(reader.get_validation_tasks()) == ids(reader.get_training_tasks())
    assert ids(reader.get_validation_tasks())[:5] != ["0", "1", "2", "3", "4"]


@needs_gsm8k
def test_gsm8k_shuffle_reproducible(gsm8k_tasks):
    train, _ = gsm8k_tasks
    reader = build_task_reader(hf_cfg(GSM8K), seed=42)
    shuffled = reader.get_training_tasks()
    expected = list(train)
    random.Random(42).shuffle(expected)
    assert ids(shuffled) == ids(expected)
    assert ids(build_task_reader(hf_cfg(GSM8K), seed=1).get_training_tasks()) != ids(shuffled)


def test_no_shuffle_keeps_source_order(tmp_path):
    path = write_jsonl(tmp_path / "t.jsonl", [{"question": f"q{i}"} for i in range(20)])
    reader = build_task_reader(file_cfg(path), shuffle=False)
    assert ids(reader.get_training_tasks()) == [str(i) for i in range(20)]


def test_random_dummy_tasks():
    reader = RandomDummyTaskReader()
    train, val = reader.get_training_tasks(), reader.get_validation_tasks()
    assert len(train) == 1000
    assert ids(train) == ids(val) == [str(i) for i in range(1000)]
    assert train[5].main_query == "[dummy task @ 5]"
    assert train[5].metadata == {"random_number": 5}
    assert train[5].env_type == "no_env"
    assert train[0] is not val[0]


def test_jsonl_field_mapping_and_defaults(tmp_path):
    path = write_jsonl(
        tmp_path / "tasks.jsonl",
        [
            {"main_query": "q0", "task_id": "a", "env_type": "math", "metadata": {"answer": "1"}},
            "",
            {"question": "q1", "answer": "#### 2"},
            {"task_id": 7, "init_messages": [{"role": "user", "content": "hi"}]},
            "   ",
        ],
    )
    tasks = read_task_file(path)
    assert len(tasks) == 3
    assert tasks[0].model_dump() == {
        "task_id": "a",
        "main_query": "q0",
        "init_messages": [],
        "env_type": "math",
        "metadata": {"answer": "1"},
    }
    assert tasks[1].task_id == "1"
    assert tasks[1].main_query == "q1"
    assert tasks[1].env_type == "no_env"
    assert tasks[1].metadata == {"question": "q1", "answer": "#### 2"}
    assert tasks[2].task_id == "7"
    assert tasks[2].main_query == ""
    assert tasks[2].first_messages() == [{"role": "user", "content": "hi"}]


def test_jsonl_reader_training_and_validation(tmp_path):
    train = write_jsonl(tmp_path / "train.jsonl", [{"question": "a"}, {"question": "b"}])
    val = write_jsonl(tmp_path / "val.jsonl", [{"question": "c"}])
    reader = build_task_reader(file_cfg(train, val), shuffle=False)
    assert [t.main_query for t in reader.get_training_tasks()] == ["a", "b"]
    assert [t.main_query for t in reader.get_validation_tasks()] == ["c"]


def test_empty_validation_path_gives_no_tasks(tmp_path):
    train = write_jsonl(tmp_path / "train.jsonl", [{"question": "a"}])
    reader = build_task_reader(file_cfg(train))
    assert len(reader.get_training_tasks()) == 1
    assert reader.get_validation_tasks() == []


def test_seed_era_dataset_file_alias(tmp_path):
    train = write_jsonl(tmp_path / "train.jsonl", [{"question": "a"}])
    assert len(build_task_reader(file_cfg(train, key="dataset_file")).get_training_tasks()) == 1
    cfg = {
        "type": "jsonl_dataset_file",
        "jsonl_dataset_file": {"training": {"file_path": ""}, "validation": {"file_path": ""}},
        "dataset_file": {"training": {"file_path": str(train)}},
    }
    assert len(build_task_reader(cfg).get_training_tasks()) == 1


def test_config_object_with_attributes(tmp_path):
    """The typed config is read by attribute, as the pydantic model from astuner.config is."""
    from types import SimpleNamespace as NS

    train = write_jsonl(tmp_path / "train.jsonl", [{"question": "a"}])
    block = NS(training=NS(file_path=str(train)), validation=NS(file_path=""))
    cfg = NS(type="jsonl_dataset_file", jsonl_dataset_file=block)
    assert [t.main_query for t in build_task_reader(cfg).get_training_tasks()] == ["a"]


def test_parquet_file(tmp_path):
    path = tmp_path / "tasks.parquet"
    table = pa.table({"question": ["p0", "p1"], "answer": ["#### 1", "#### 2"], "task_id": ["x", None]})
    pq.write_table(table, path)
    tasks = build_task_reader(file_cfg(path, path), shuffle=False).get_validation_tasks()
    assert ids(tasks) == ["x", "1"]
    assert tasks[1].main_query == "p1"
    assert tasks[1].metadata == {"question": "p1", "answer": "#### 2", "task_id": None}


def test_missing_file(tmp_path):
    missing = tmp_path / "missing.jsonl"
    with pytest.raises(TaskReaderError, match="not found") as err:
        build_task_reader(file_cfg(missing)).get_training_tasks()
    assert str(missing) in str(err.value)


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ([{"question": "a"}, "", "{not json"], ":3: invalid JSON"),
        ([[1, 2]], ":1: expected a JSON object, got list"),
        ([{"question": "a"}, {"prompt": "b"}], ":2: no 'main_query' or 'question' field"),
        ([{"main_query": 5}], ":1: field 'main_query'"),
        ([{"question": "a", "init_messages": "hi"}], ":1: field 'init_messages'"),
    ],
)
def test_bad_record_names_file_and_line(tmp_path, lines, expected):
    path = write_jsonl(tmp_path / "bad.jsonl", lines)
    with pytest.raises(TaskReaderError) as err:
        read_task_file(path)
    assert f"{path}{expected}" in str(err.value)
    assert "\n" not in str(err.value)


def test_zero_tasks(tmp_path):
    path = write_jsonl(tmp_path / "empty.jsonl", ["", "  "])
    with pytest.raises(TaskReaderError, match="no tasks in") as err:
        read_task_file(path)
    assert str(path) in str(err.value)


def test_unsupported_extension_and_directory(tmp_path):
    csv = tmp_path / "tasks.csv"
    csv.write_text("question\na\n")
    with pytest.raises(TaskReaderError, match=r"unsupported task file type '\.csv'.*\.jsonl, \.parquet"):
        read_task_file(csv)
    with pytest.raises(TaskReaderError, match="not a regular file"):
        read_task_file(tmp_path)


def test_corrupt_parquet(tmp_path):
    path = tmp_path / "bad.parquet"
    path.write_bytes(b"not parquet at all")
    with pytest.raises(TaskReaderError, match="cannot read parquet file") as err:
        read_task_file(path)
    assert str(path) in str(err.value)


def test_no_file_configured():
    expected = r"task_reader\.jsonl_dataset_file\.training\.file_path is empty"
    with pytest.raises(TaskReaderError, match=expected):
        build_task_reader(file_cfg())
    reader = DatasetFileTaskReader(validation_path="v.jsonl")
    with pytest.raises(TaskReaderError, match="training.file_path is empty"):
        reader.get_training_tasks()


def test_unknown_types_and_incomplete_env_service():
    with pytest.raises(TaskReaderError, match="task_reader.env_service is missing"):
        build_task_reader({"type": "env_service"})
    with pytest.raises(TaskReaderError) as err:
        build_task_reader({"type": "hf"})
    message = str(err.value)
    assert "'hf'" in message
    for valid in ("huggingface_dat_repo", "jsonl_dataset_file", "dataset_file", "random_dummy"):
        assert valid in message
    with pytest.raises(TaskReaderError, match="config is missing"):
        build_task_reader(None)
    with pytest.raises(TaskReaderError, match="dataset_path is empty"):
        build_task_reader(hf_cfg(""))
    with pytest.raises(TaskReaderError, match="huggingface_dat_repo is missing"):
        build_task_reader({"type": "huggingface_dat_repo"})
    assert isinstance(build_task_reader({"type": "random_dummy"}, shuffle=False), TaskReader)


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
