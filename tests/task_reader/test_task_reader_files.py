"""Task files (JSONL and parquet: field mapping, every error path), dummy tasks, seeded shuffling,
and ``build_task_reader``'s config handling (the typed ``task_reader`` block, seed-era alias, unimplemented types).

Nothing here needs shared data or the network: task files are written to ``tmp_path``. The Hugging
Face reader (GSM8K) and the download script: ``test_task_reader_hf.py``.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from astuner.config.schema import TaskReaderConfig
from astuner.task_reader import (
    DatasetFileTaskReader,
    RandomDummyTaskReader,
    ShuffledTaskReader,
    TaskReader,
    TaskReaderError,
    build_task_reader,
    read_task_file,
)
from tests.task_reader.test_task_reader_hf import hf_cfg, ids

pytestmark = pytest.mark.integration


def file_cfg(train: str | Path = "", val: str | Path = "", key: str = "jsonl_dataset_file") -> TaskReaderConfig:
    block = {"training": {"file_path": str(train)}, "validation": {"file_path": str(val)}}
    return TaskReaderConfig.model_validate({"type": key, key: block})


def write_jsonl(path: Path, lines: list) -> Path:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


def test_shuffle_is_seeded_and_leaves_global_random_alone():
    cfg = TaskReaderConfig(type="random_dummy")
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
    reader = build_task_reader(TaskReaderConfig(type="random_dummy"), seed=3)
    assert isinstance(reader, ShuffledTaskReader)
    assert ids(reader.get_training_tasks()) == ids(reader.get_training_tasks())
    assert ids(reader.get_validation_tasks()) == ids(reader.get_training_tasks())
    assert ids(reader.get_validation_tasks())[:5] != ["0", "1", "2", "3", "4"]


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
    """The seed-era type and block name load as ``jsonl_dataset_file`` and read the same file."""
    train = write_jsonl(tmp_path / "train.jsonl", [{"question": "a"}])
    cfg = file_cfg(train, key="dataset_file")
    assert cfg.type == "jsonl_dataset_file" and cfg.jsonl_dataset_file.training.file_path == str(train)
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


def test_unknown_type_and_empty_dataset_path():
    with pytest.raises(ValueError, match="'hf'"):
        TaskReaderConfig(type="hf")  # the schema refuses it when the config loads
    with pytest.raises(TaskReaderError) as err:
        build_task_reader(TaskReaderConfig.model_construct(type="hf"))
    message = str(err.value)
    assert "'hf'" in message
    for valid in ("huggingface_dat_repo", "jsonl_dataset_file", "dataset_file", "random_dummy"):
        assert valid in message
    with pytest.raises(TaskReaderError, match="dataset_path is empty"):
        build_task_reader(hf_cfg(""))
    assert isinstance(build_task_reader(TaskReaderConfig(type="random_dummy"), shuffle=False), TaskReader)
