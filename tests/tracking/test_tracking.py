"""Trackers: names in the config, several sinks at once, resume with the stored ids, tables, the PNGs.

wandb is installed here (and driven for real, offline, in ``test_tracking_e2e.py``); swanlab and
mlflow are not, so their sinks are tested against small fake modules that record every call: that
checks astuner's plumbing (what is called, with which id and step), not the trackers themselves.
TensorBoard is real throughout: event files are read back with its ``EventAccumulator``.
"""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest

from astuner.config import ConfigError, load_config
from astuner.metrics import MetricsLogger, TrackerUnavailable
from astuner.rollout import RolloutResult
from astuner.tracking.names import check_trackers, normalize_logger, tracker_names, trinity_monitor
from astuner.tracking.run_ids import IDS_FILE, RunIds, new_run_id
from astuner.tracking.table import TABLE_TEXT_CHARS, CompletionRow, completion_rows, markdown

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# --- names -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        (None, "none"),
        ("none", "none"),
        ("console", "none"),
        (["console"], "none"),
        ("TensorBoard", "tensorboard"),
        (["console", "swanlab"], "swanlab"),
        (["tensorboard", "wandb", "console", "wandb"], ["tensorboard", "wandb"]),
        (["mlflow", "none", "swanlab"], ["mlflow", "swanlab"]),
    ],
)
def test_logger_values_have_one_stored_form(given, stored):
    assert normalize_logger(given) == stored


@pytest.mark.parametrize(("given", "message"), [
    ("comet", "unknown tracker 'comet'"), (["wandb", 3], "tracker names are strings"), (3, "got int"),
])
def test_bad_logger_values_are_one_line_errors(given, message):
    with pytest.raises(ValueError, match=message) as caught:
        normalize_logger(given)
    assert "\n" not in str(caught.value)


def test_the_config_accepts_a_list_and_rejects_an_unknown_tracker_with_its_key(tmp_path):
    conf = tmp_path / "c.yaml"
    conf.write_text("astuner:\n  trainer_common:\n    logger: [tensorboard, wandb]\n")
    assert load_config(conf).astuner.trainer_common.logger == ["tensorboard", "wandb"]
    overridden = load_config(conf, ["astuner.trainer_common.logger=[console, mlflow]"])
    assert overridden.astuner.trainer_common.logger == "mlflow"
    conf.write_text("astuner:\n  trainer_common:\n    logger: [tensorboard, comet]\n")
    with pytest.raises(ConfigError) as caught:
        load_config(conf)
    assert str(caught.value).splitlines() == [
        f"{conf}: astuner.trainer_common.logger: unknown tracker 'comet' "
        "(choose from none, console, tensorboard, wandb, swanlab, mlflow)"
    ]


def test_check_trackers_names_the_missing_package_without_importing_anything(monkeypatch):
    monkeypatch.setitem(sys.modules, "swanlab", None)
    monkeypatch.setitem(sys.modules, "mlflow", types.ModuleType("mlflow"))
    check_trackers(["tensorboard", "mlflow"])
    with pytest.raises(TrackerUnavailable) as caught:
        check_trackers(["tensorboard", "swanlab"])
    assert str(caught.value) == "trainer_common.logger: 'swanlab' needs the swanlab package (pip install swanlab)"


def test_trinity_takes_the_first_tracker_or_tensorboard():
    assert trinity_monitor(["wandb", "tensorboard"]) == "wandb"
    assert trinity_monitor("none") == "tensorboard"
    assert tracker_names("none") == () and tracker_names(["mlflow", "wandb"]) == ("mlflow", "wandb")


# --- run ids -----------------------------------------------------------------------------------


def test_run_ids_are_reused_only_when_resuming(tmp_path):
    assert len(new_run_id()) == 21 and new_run_id().isalnum() and new_run_id() != new_run_id()
    RunIds(tmp_path, resume=False).store("wandb", "abc")
    assert RunIds(tmp_path, resume=True).get("wandb") == "abc"
    assert RunIds(tmp_path, resume=False).get("wandb") is None
    (tmp_path / IDS_FILE).write_text("[1, 2]")
    with pytest.warns(UserWarning, match="not a JSON object"):
        assert RunIds(tmp_path, resume=True).get("wandb") is None


# --- several sinks at once, with fakes that record calls ----------------------------------------


class Recorder:
    """Fake swanlab, mlflow and wandb modules that append every call to one list."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.mlflow_runs = 0

    def swanlab(self) -> types.ModuleType:
        m = types.ModuleType("swanlab")
        m.init = lambda **kw: self.calls.append(("swanlab.init", kw))
        m.log = lambda data, step: self.calls.append(("swanlab.log", data, step))
        m.finish = lambda: self.calls.append(("swanlab.finish",))
        m.Text = lambda text, caption=None: ("Text", text, caption)
        return m

    def mlflow(self) -> types.ModuleType:
        m = types.ModuleType("mlflow")

        def start_run(run_id=None, run_name=None):
            self.calls.append(("mlflow.start_run", run_id, run_name))
            self.mlflow_runs += 1
            return types.SimpleNamespace(info=types.SimpleNamespace(run_id=run_id or f"mlrun{self.mlflow_runs}"))

        m.set_tracking_uri = lambda uri: self.calls.append(("mlflow.set_tracking_uri", uri))
        m.set_experiment = lambda name: self.calls.append(("mlflow.set_experiment", name))
        m.start_run = start_run
        m.log_dict = lambda data, path: self.calls.append(("mlflow.log_dict", path))
        m.log_metrics = lambda data, step: self.calls.append(("mlflow.log_metrics", data, step))
        m.log_table = lambda data, artifact_file: self.calls.append(("mlflow.log_table", data, artifact_file))
        m.end_run = lambda: self.calls.append(("mlflow.end_run",))
        return m

    def named(self, prefix: str) -> list[tuple]:
        return [c for c in self.calls if c[0].startswith(prefix)]


@pytest.fixture
def fakes(monkeypatch):
    rec = Recorder()
    monkeypatch.setitem(sys.modules, "swanlab", rec.swanlab())
    monkeypatch.setitem(sys.modules, "mlflow", rec.mlflow())
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return rec


def scalars(path: Path, tag: str) -> list[tuple[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(path))
    acc.Reload()
    return [(e.step, round(e.value, 4)) for e in acc.Scalars(tag)]


def test_three_trackers_at_once_resume_their_runs_and_continue_the_steps(tmp_path, fakes):
    pytest.importorskip("tensorboard")
    exp = tmp_path / "run"
    trackers = ["tensorboard", "swanlab", "mlflow"]
    settings = {"seed": 1, "local": {"max_steps": 3}}
    with MetricsLogger(exp, tracker=trackers, project="p", run_name="r", echo=False, plot_every=100,
                       config=settings) as log:
        assert [s.name for s in log.sinks] == trackers
        for step in (1, 2, 3):  # step 3 is logged, then the run dies before its next checkpoint
            log.log(step, {"reward_mean": step / 10, "val/pass@4": 0.5, "loss": float("nan")})
    ids = json.loads((exp / IDS_FILE).read_text())
    assert set(ids) == {"swanlab", "mlflow"} and ids["mlflow"] == "mlrun1" and len(ids["swanlab"]) == 21

    with MetricsLogger(exp, tracker=trackers, project="p", run_name="r", echo=False, plot_every=100,
                       config=settings, resume_step=2) as log:
        for step in (3, 4):
            log.log(step, {"reward_mean": float(step)})
    assert json.loads((exp / IDS_FILE).read_text()) == ids

    first, second = [c[1] for c in fakes.named("swanlab.init")]
    assert first["id"] == second["id"] == ids["swanlab"] and first["resume"] == second["resume"] == "allow"
    assert first["logdir"] == str(exp / "swanlog") and first["experiment_name"] == "r" and first["config"] == settings
    assert fakes.named("mlflow.start_run") == [("mlflow.start_run", None, "r"), ("mlflow.start_run", "mlrun1", None)]
    assert fakes.named("mlflow.set_tracking_uri")[0][1] == (exp / "mlruns").resolve().as_uri()
    assert len(fakes.named("mlflow.log_dict")) == 1  # the config once, not again on resume
    assert [c[2] for c in fakes.named("swanlab.log")] == [1, 2, 3, 3, 4]
    mlflow_logs = fakes.named("mlflow.log_metrics")
    assert mlflow_logs[0] == ("mlflow.log_metrics", {"reward_mean": 0.1, "val/pass_4": 0.5}, 1)  # '@' refused
    assert [c[2] for c in mlflow_logs] == [1, 2, 3, 3, 4]
    assert len(fakes.named("swanlab.finish")) == len(fakes.named("mlflow.end_run")) == 2
    # TensorBoard appends to the same folder and hides what the killed run logged after step 2
    assert scalars(exp / "tensorboard", "reward_mean") == [(1, 0.1), (2, 0.2), (3, 3.0), (4, 4.0)]


def test_a_fresh_run_in_the_same_folder_starts_new_tracker_runs(tmp_path, fakes):
    exp = tmp_path / "run"
    MetricsLogger(exp, tracker="swanlab", echo=False).close()
    old = json.loads((exp / IDS_FILE).read_text())["swanlab"]
    MetricsLogger(exp, tracker="swanlab", echo=False).close()
    new = json.loads((exp / IDS_FILE).read_text())["swanlab"]
    assert new != old and [c[1]["id"] for c in fakes.named("swanlab.init")] == [old, new]


def test_a_missing_second_tracker_creates_nothing(tmp_path, fakes, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)
    with pytest.raises(TrackerUnavailable, match="pip install wandb"):
        MetricsLogger(tmp_path / "run", tracker=["swanlab", "wandb"], echo=False)
    assert fakes.calls == [] and not (tmp_path / "run").exists()


def test_a_sink_that_fails_to_start_closes_the_ones_already_started(tmp_path, fakes, monkeypatch):
    def broken(**_kw):
        raise RuntimeError("mlflow server unreachable")

    monkeypatch.setattr(sys.modules["mlflow"], "start_run", broken)
    with pytest.raises(RuntimeError, match="unreachable"):
        MetricsLogger(tmp_path, tracker=["swanlab", "mlflow"], echo=False)
    assert [c[0] for c in fakes.named("swanlab")] == ["swanlab.init", "swanlab.finish"]


# --- tables ------------------------------------------------------------------------------------


def result(task: str, repeat: int, **kw) -> RolloutResult:
    return RolloutResult(task_id=task, repeat_index=repeat, rollout_id=f"{task}.{repeat}", **kw)


def test_completion_rows_take_each_task_first_and_the_text_a_reader_wants():
    results = [
        result("a", 0, reward=1.0, is_success=True, final_answer="\\boxed{42}"),
        result("a", 1, final_answer="x" * 1000),
        result("b", 0, messages=[{"role": "assistant", "content": "first"}, {"role": "user", "content": "u"},
                                 {"role": "assistant", "content": "last reply"}]),
        result("b", 1, error="Traceback (most recent call last):\n  ...\nValueError: judge broke"),
        result("c", 0, final_answer={"answer": 7}),
    ]
    rows = completion_rows(results, limit=4)
    assert [(r.task_id, r.repeat) for r in rows] == [("a", 0), ("b", 0), ("c", 0), ("a", 1)]
    assert [r.text for r in rows[:3]] == ["\\boxed{42}", "last reply", '{"answer": 7}']
    assert rows[0].reward == 1.0 and rows[0].success is True
    assert len(rows[3].text) == TABLE_TEXT_CHARS and rows[3].text.endswith("…")
    assert completion_rows(results)[4].text == "error: ValueError: judge broke"


def test_markdown_escapes_pipes_and_newlines():
    text = markdown([CompletionRow("t|1", 0, 0.5, False, "a | b\nc")])
    assert text.splitlines() == [
        "| task_id | repeat | reward | success | text |", "|---|---|---|---|---|",
        "| t\\|1 | 0 | 0.5 | False | a \\| b<br>c |",
    ]


def test_log_table_reaches_every_tracker_and_a_failing_one_only_warns(tmp_path, fakes, monkeypatch):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    rows = [CompletionRow("t1", 0, 1.0, True, "42"), CompletionRow("t2", 0, 0.0, False, "no")]
    log = MetricsLogger(tmp_path, tracker=["tensorboard", "swanlab", "mlflow"], echo=False)
    log.log_table(2, rows)
    assert fakes.named("mlflow.log_table") == [("mlflow.log_table", {
        "task_id": ["t1", "t2"], "repeat": [0, 0], "reward": [1.0, 0.0], "success": [True, False], "text": ["42", "no"],
    }, "val_completions/step_000002.json")]
    ((_, data, step),) = fakes.named("swanlab.log")
    assert step == 2 and data["val/completions"][0] == ("Text", "42", "t1 #0 | reward 1.000 | success")

    def broken(data, step):
        raise ConnectionError("swanlab is down")

    monkeypatch.setattr(sys.modules["swanlab"], "log", broken)
    with pytest.warns(UserWarning, match="swanlab table not logged: swanlab is down"):
        log.log_table(4, rows)
    log.log_table(6, rows)  # warned once
    log.close()
    assert [c[2] for c in fakes.named("mlflow.log_table")] == [
        "val_completions/step_000002.json", "val_completions/step_000004.json", "val_completions/step_000006.json"]
    acc = EventAccumulator(str(tmp_path / "tensorboard"))
    acc.Reload()
    events = acc.Tensors("val/completions/text_summary")
    assert [e.step for e in events] == [2, 4, 6]
    assert b"| t1 | 0 | 1.0 | True | 42 |" in events[0].tensor_proto.string_val[0]


# --- the PNGs ----------------------------------------------------------------------------------


def full_rows(steps: int = 12) -> list[dict]:
    rows = []
    for s in range(1, steps + 1):
        row = {"step": s, "time": 0.0, "reward_mean": s / steps, "success_rate": s / steps / 2,
               "bad_case/empty_tool_stdout": 0.3, "response_length_mean": 200.0 - s, "pg_loss": 0.01,
               "ppo_kl": 1e-4, "grad_norm": 3.0, "step_time_s": 9.0, "rollout_time_s": 6.0, "lr": 1e-6}
        if s % 4 == 0:
            row.update({"val/success_rate": 0.5, "val/reward_mean": 0.4, "val/pass@4": 0.7})
        rows.append(row)
    return rows


def test_the_curve_is_a_grid_of_panels_with_train_and_val_apart():
    pytest.importorskip("matplotlib")
    from astuner.tracking.curves import build_figure

    fig = build_figure(full_rows(), "run")
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["success rate", "bad cases (fraction of rollouts)", "reward (mean)", "response length (tokens)",
                      "policy loss", "KL", "grad norm", "time per step (s)", "validation (other)"]
    success = fig.axes[0]
    assert success.get_ylim() == (-0.03, 1.03)
    train, val = success.get_lines()
    assert (train.get_label(), val.get_label()) == ("success_rate", "val/success_rate")
    assert train.get_linestyle() == "-" and val.get_linestyle() == "--" and train.get_color() == val.get_color()
    only_reward = build_figure([{"step": 1, "reward_mean": 0.5}, {"step": 2, "reward_mean": 0.7}], "r")
    assert [ax.get_title() for ax in only_reward.axes] == ["reward (mean)"]  # empty panels are skipped
    with pytest.raises(ValueError, match="no metric the curve draws"):
        build_figure([{"step": 1, "lr": 1e-6}], "r")


def test_the_curve_png_renders(tmp_path):
    pytest.importorskip("matplotlib")
    from astuner.metrics import plot_curves

    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text("".join(json.dumps(r) + "\n" for r in full_rows()))
    out = plot_curves(metrics, tmp_path / "curve.png")
    assert out.read_bytes()[:8] == PNG_MAGIC and out.stat().st_size > 20_000


def test_the_debug_summary_png_has_rates_and_histograms(tmp_path):
    pytest.importorskip("matplotlib")
    from astuner.tracking.summary_plot import build_summary_figure, plot_summary, summary_rates

    summary = {"rollouts": 4, "finished_rollouts": 4, "success_rate": 0.75, "reward_mean": 0.75,
               "bad_case/empty_tool_stdout": 1, "madness/repeat": 2}
    assert summary_rates(summary) == {"success_rate": 0.75, "bad_case/empty_tool_stdout": 0.25, "madness/repeat": 0.5}
    fig = build_summary_figure(summary, [1.0, 1.0, 1.0, 0.0], [30, 40, 50, 60], "dbg")
    assert [ax.get_title() for ax in fig.axes] == [
        "rates (fraction of rollouts)", "reward per rollout", "response length (generated tokens)"]
    assert [ax.get_title() for ax in build_summary_figure(summary, [], [], "dbg").axes] == [
        "rates (fraction of rollouts)"]
    png = plot_summary(summary, [1.0, 0.0], [10, 20], tmp_path / "d.png", "dbg")
    assert png.read_bytes()[:8] == PNG_MAGIC
    with pytest.raises(ValueError, match="no rollout ended"):
        build_summary_figure({"rollouts": 0}, [], [], "dbg")
