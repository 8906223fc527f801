"""Trackers end to end: the local backbone feeds TensorBoard and wandb at once, across a run and its resume;
the debug backbone draws its plot and names the viewer; Trinity gets the first tracker.

wandb runs for real in offline mode (``WANDB_MODE=offline``: nothing leaves this machine); each
launch writes ``<run>/wandb/offline-run-<time>-<id>/run-<id>.wandb``, read back here with a small
reader of that file's record framing (wandb 0.31: 7-byte header, then 32 KiB blocks of records,
each a 7-byte header — checksum, length, type — and a ``Record`` protobuf). That framing is
wandb's internal format: a wandb upgrade that changes it fails this test, not astuner.
"""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

import pytest

from astuner.cli import main
from tests.conftest import REPO

pytestmark = pytest.mark.integration

JUDGE = '''
from astuner.task_judge.base_judge import BaseJudge


class ParityJudge(BaseJudge):
    def judge(self, judge_input):
        n = len(str(judge_input.get("final_answer", "")))
        return float(n % 2), bool(n % 2)
'''


def write_config(tmp_path: Path) -> Path:
    (tmp_path / "parity_judge.py").write_text(JUDGE)
    tasks = REPO / "tutorial" / "example_math_agent" / "data" / "offline_tasks.jsonl"
    conf = tmp_path / "track.yaml"
    conf.write_text(f"""\
astuner:
  experiment_name: track_test
  project_name: astuner_tests
  task_reader:
    type: dataset_file
    dataset_file:
      training: {{file_path: {tasks}}}
      validation: {{file_path: {tasks}}}
  rollout:
    num_repeat: 2
    compute_madness_checklist: []
    max_response_length_in_one_turn: 16
    max_model_len: 4096
    val_kwargs: {{num_repeat: 1}}
  data: {{train_batch_size: 2, max_prompt_length: 2000, max_response_length: 2000}}
  task_judge: {{judge_protocol: {tmp_path}/parity_judge.py->ParityJudge}}
  model: {{path: "astuner://tiny"}}
  trainer_common: {{logger: [console, tensorboard, wandb], save_freq: 2, test_freq: 2, total_epochs: 10}}
  local: {{max_steps: 2, val_max_tasks: 2}}
""")
    return conf


def wandb_records(path: Path) -> list:
    """The ``Record`` protobufs of a ``.wandb`` file, in order."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B", "not a wandb run file"
    records, pos, pending = [], 7, b""
    while pos + 7 <= len(data):
        left = 32768 - pos % 32768
        if left < 7:  # a block's tail too short for a record header is padding
            pos += left
            continue
        _checksum, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if length == 0 and kind == 0:
            pos += left
            continue
        pending += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a whole record, or the last piece of one
            record = pb.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def wandb_launch(folder: Path) -> tuple[str, list[int], list[int]]:
    """(run id, steps with scalars, steps with a completions table) of one offline launch."""
    (run_file,) = folder.glob("run-*.wandb")
    records = wandb_records(run_file)
    (run_id,) = {r.run.run_id for r in records if r.WhichOneof("record_type") == "run"}
    scalar_steps, table_steps = [], []
    for r in records:
        if r.WhichOneof("record_type") != "history":
            continue
        keys = {item.key or "/".join(item.nested_key) for item in r.history.item}
        if "reward_mean" in keys:
            scalar_steps.append(r.history.step.num)
        if any(k.startswith("val/completions/") for k in keys):
            table_steps.append(r.history.step.num)
    return run_id, scalar_steps, table_steps


@pytest.fixture
def offline_wandb(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    for var, value in {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_CONSOLE": "off",
                       "WANDB_CACHE_DIR": "wandb_cache", "WANDB_CONFIG_DIR": "wandb_config",
                       "WANDB_DATA_DIR": "wandb_data", "WANDB_ARTIFACT_DIR": "wandb_artifacts"}.items():
        monkeypatch.setenv(var, str(tmp_path / value) if value.startswith("wandb_") else value)
    yield
    import wandb

    wandb.teardown()  # stop the wandb-core service this process started


def test_tensorboard_and_wandb_follow_a_run_and_its_resume(tmp_path, monkeypatch, capsys, offline_wandb):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.setenv("ASTUNER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CI", "1")
    monkeypatch.chdir(REPO)
    conf = write_config(tmp_path)
    argv = ["--conf", str(conf), "--backbone=local", "--exp-dir", str(tmp_path / "exp")]
    run = tmp_path / "exp" / "track_test"

    assert main(argv) == 0
    first_id = json.loads((run / "tracker_ids.json").read_text())["wandb"]
    assert main([*argv, "astuner.local.max_steps=4"]) == 0
    assert "resuming track_test from step 2" in capsys.readouterr().out
    assert json.loads((run / "tracker_ids.json").read_text()) == {"wandb": first_id}

    assert [r["step"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())] == [1, 2, 3, 4]
    launches = sorted((run / "wandb").glob("offline-run-*"))
    assert len(launches) == 2 and all(p.name.endswith(f"-{first_id}") for p in launches)
    (id_1, steps_1, tables_1), (id_2, steps_2, tables_2) = map(wandb_launch, launches)
    assert id_1 == id_2 == first_id
    assert (steps_1, steps_2) == ([1, 2], [3, 4])  # one run, its steps continuing
    assert (tables_1, tables_2) == ([2], [4])  # one completions table per validation step
    for launch in launches:
        (table,) = (launch / "files" / "media" / "table" / "val").glob("completions_*.table.json")
        content = json.loads(table.read_text())
        assert content["columns"] == ["task_id", "repeat", "reward", "success", "text"]
        assert len(content["data"]) == 2  # val_max_tasks 2, one rollout each

    acc = EventAccumulator(str(run / "tensorboard"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("reward_mean")] == [1, 2, 3, 4]
    assert [e.step for e in acc.Scalars("val/success_rate")] == [2, 4]
    assert [e.step for e in acc.Tensors("val/completions/text_summary")] == [2, 4]
    assert len(list((run / "tensorboard").glob("events.out.tfevents.*"))) == 2  # one file per launch, one folder


def test_a_missing_tracker_is_one_line_before_anything_is_created(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "swanlab", None)  # not installed, whatever this machine has
    monkeypatch.setenv("ASTUNER_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(REPO)
    conf = write_config(tmp_path)
    code = main(["--conf", str(conf), "--backbone=local", "--exp-dir", str(tmp_path / "exp"),
                 "astuner.trainer_common.logger=[tensorboard, swanlab]"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert err.endswith("track.yaml: astuner.trainer_common.logger: 'swanlab' needs the swanlab package "
                        "(pip install swanlab)"), err
    assert not (tmp_path / "exp").exists()  # the preflight reports it before anything is created
    assert not (tmp_path / "cache").exists()  # the tiny model was never built, so never loaded


def test_debug_backbone_draws_its_plot_and_names_the_viewer(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("ASTUNER_CACHE", str(tmp_path / "cache"))
    exp = tmp_path / "exp"
    code = main(["--conf", "tutorial/example_math_agent/math_agent_offline.yaml", "--backbone=debug",
                 "--exp-dir", str(exp), "astuner.debug.debug_first_n_tasks=2"])
    out = capsys.readouterr().out
    assert code == 0
    (run,) = exp.iterdir()
    png = run / "debug_summary.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert out.splitlines()[-2:] == [f"plot: {png}", f"viewer: python -m astuner.logview --exp-dir {run}"]


def test_trinity_monitor_is_the_first_tracker(tmp_path):
    from astuner.backbone.trinity.config import translate
    from astuner.config import load_config, prepare_experiment

    conf = tmp_path / "c.yaml"
    conf.write_text(f"""\
astuner:
  experiment_name: tr
  model: {{path: /models/qwen}}
  rollout: {{n_vllm_engine: 1}}
  trainer_common: {{nnodes: 1, n_gpus_per_node: 8, checkpoint_base_dir: {tmp_path / 'ckpt'}, logger: [wandb, mlflow]}}
""")
    config = load_config(conf, backbone="trinity")
    exp_dir = prepare_experiment(config, conf, tmp_path / "exp")
    assert translate(config, exp_dir).data["monitor"] == {"monitor_type": "wandb"}
    config.astuner.trainer_common.logger = ["console"]
    assert translate(config, exp_dir).data["monitor"] == {"monitor_type": "tensorboard"}
