"""metrics.jsonl, the training-curve PNG and the optional tracker sinks."""

from __future__ import annotations

import json
import os
import struct
import sys
import types
from pathlib import Path

import pytest

from astuner.config import load_config
from astuner.metrics import CURVE_FILE, METRICS_FILE, MetricsLogger, TrackerUnavailable, plot_curves, read_metrics


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", data[16:24])


def synthetic_step(step: int) -> dict:
    return {
        "reward_mean": min(1.0, 0.2 + 0.03 * step),
        "success_rate": min(1.0, 0.1 + 0.035 * step),
        "bad_case/empty_tool_stdout": max(0.0, 0.3 - 0.012 * step),
        "bad_case/answer_before_tool_response": max(0.0, 0.2 - 0.008 * step),
        "bad_case/malformed_tool_call": 0.05,
    }


def test_one_json_line_per_step_with_step_time_and_scalars(tmp_path):
    with MetricsLogger(tmp_path, plot_every=1000, echo=False) as log:
        log.log(1, {"reward_mean": 0.5, "ok": True, "n": 3})
        log.log(2, {"reward_mean": 0.75})
    lines = (tmp_path / METRICS_FILE).read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    assert [r["step"] for r in rows] == [1, 2]
    assert rows[0]["reward_mean"] == 0.5 and rows[0]["ok"] == 1 and rows[0]["n"] == 3
    assert all(isinstance(r["time"], float) for r in rows)


def test_non_finite_becomes_null_and_non_scalars_are_dropped_with_a_warning(tmp_path):
    log = MetricsLogger(tmp_path, echo=False)
    with pytest.warns(UserWarning) as caught:
        row = log.log(1, {"loss": float("nan"), "hist": [1, 2], "name": "x"})
        log.log(2, {"hist": [3]})
    assert [str(w.message) for w in caught] == [
        "metrics: 'hist' is not a scalar (list); not logged",
        "metrics: 'name' is not a scalar (str); not logged",
    ]
    assert row == {"step": 1, "time": row["time"], "loss": None}
    assert json.loads((tmp_path / METRICS_FILE).read_text().splitlines()[0])["loss"] is None


def test_numpy_and_torch_scalars_are_written_as_numbers(tmp_path):
    torch = pytest.importorskip("torch")
    row = MetricsLogger(tmp_path, echo=False).log(1, {"a": torch.tensor(0.25), "b": torch.tensor(3)})
    assert row["a"] == 0.25 and row["b"] == 3


def test_reserved_names_are_refused(tmp_path):
    with pytest.raises(ValueError, match="reserved"):
        MetricsLogger(tmp_path, echo=False).log(1, {"step": 3})


def test_curve_is_redrawn_every_n_steps_and_at_close(tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib draws the curve")
    log = MetricsLogger(tmp_path, plot_every=3, echo=False)
    curve = tmp_path / CURVE_FILE
    for step in (1, 2):
        log.log(step, synthetic_step(step))
    assert not curve.exists()
    log.log(3, synthetic_step(3))
    assert curve.exists()
    first = curve.stat().st_mtime_ns
    log.log(4, synthetic_step(4))
    log.close()
    assert curve.stat().st_mtime_ns >= first
    width, height = png_size(curve)
    assert width > 600 and height > 300


def test_plot_curves_draws_every_group_as_a_real_png(tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib draws the curve")
    metrics = tmp_path / "run" / METRICS_FILE
    metrics.parent.mkdir()
    with metrics.open("w") as f:
        for step in range(1, 31):
            row = {"step": step, "time": 0.0, **synthetic_step(step)}
            if step % 10 == 0:
                row.update({"val/reward_mean": 0.3 + 0.01 * step, "val/success_rate": 0.25 + 0.01 * step,
                            "val/pass@4": 0.5 + 0.01 * step})
            f.write(json.dumps(row) + "\n")
        f.write('{"step": 31, "reward_me')  # a write in progress is ignored
    out = plot_curves(metrics, tmp_path / "curve.png")
    assert out == tmp_path / "curve.png"
    width, height = png_size(out)
    assert width >= 1200 and height >= 600  # two columns, two rows: success, bad cases, reward, validation (other)
    only_reward = tmp_path / "reward_only.jsonl"
    only_reward.write_text("".join(json.dumps({"step": s, "reward_mean": s}) + "\n" for s in range(3)))
    assert png_size(plot_curves(only_reward, tmp_path / "one.png"))[0] < width


def test_plot_curves_needs_rows(tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib draws the curve")
    empty = tmp_path / METRICS_FILE
    empty.write_text("")
    with pytest.raises(ValueError, match="no rows"):
        plot_curves(empty, tmp_path / "x.png")


def test_repeated_steps_keep_the_last_value(tmp_path):
    from astuner.tracking.curves import series

    rows = [{"step": 1, "reward_mean": 0.1}, {"step": 2, "reward_mean": 0.2}, {"step": 2, "reward_mean": 0.9}]
    assert series(rows)["reward_mean"] == [(1, 0.1), (2, 0.9)]


def test_read_metrics_skips_garbage(tmp_path):
    path = tmp_path / METRICS_FILE
    path.write_text('{"step": 1, "x": NaN}\nnot json\n[1]\n\n{"step": 2}\n{"step": 3')
    assert read_metrics(path) == [{"step": 1, "x": None}, {"step": 2}]


def test_a_failing_redraw_warns_and_training_goes_on(tmp_path, monkeypatch):
    import astuner.metrics as m

    def broken(*_a, **_k):
        raise OSError("disk full")

    monkeypatch.setattr(m, "plot_curves", broken)
    log = MetricsLogger(tmp_path, plot_every=1, echo=False)
    with pytest.warns(UserWarning, match="disk full"):
        log.log(1, {"reward_mean": 1.0})
    log.log(2, {"reward_mean": 1.0})
    assert len(read_metrics(tmp_path / METRICS_FILE)) == 2


def test_echo_prints_one_line_per_step_without_a_terminal_and_ci_is_quiet(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    MetricsLogger(tmp_path / "a", echo=True).log(7, {"reward_mean": 0.5, "success_rate": 0.25})
    assert capsys.readouterr().out == "step 7 | reward_mean 0.500 | success_rate 0.250\n"
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    MetricsLogger(tmp_path / "b").log(1, {"reward_mean": 0.5})
    assert capsys.readouterr().out == "step 1 | reward_mean 0.500\n"
    monkeypatch.setenv("CI", "true")
    MetricsLogger(tmp_path / "c").log(1, {"reward_mean": 0.5})
    assert capsys.readouterr().out == ""


def test_no_tracker_is_imported_unless_configured(tmp_path, monkeypatch):
    for name in ("wandb", "swanlab", "tensorboardX"):
        monkeypatch.setitem(sys.modules, name, None)  # importing it would raise
    MetricsLogger(tmp_path, tracker="none", echo=False).log(1, {"reward_mean": 1.0})
    MetricsLogger(tmp_path, tracker="console", echo=False).close()


def test_a_configured_tracker_that_is_missing_fails_at_start(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)
    with pytest.raises(TrackerUnavailable, match="pip install wandb"):
        MetricsLogger(tmp_path / "run", tracker="wandb")
    with pytest.raises(ValueError, match="unknown tracker 'comet'"):
        MetricsLogger(tmp_path / "run", tracker="comet")
    assert not (tmp_path / "run").exists()  # nothing created before the trackers are known to work


def test_wandb_sink_gets_the_scalars_and_is_silent_under_ci(tmp_path, monkeypatch):
    calls = []

    class Run:
        def log(self, data, step):
            calls.append(("log", data, step))

        def finish(self):
            calls.append(("finish",))

    fake = types.ModuleType("wandb")
    fake.init = lambda **kw: calls.append(("init", kw)) or Run()
    monkeypatch.setitem(sys.modules, "wandb", fake)
    monkeypatch.setenv("CI", "true")
    monkeypatch.delenv("WANDB_SILENT", raising=False)
    with MetricsLogger(tmp_path, tracker="wandb", project="p", run_name="r", plot_every=100) as log:
        log.log(3, {"reward_mean": 0.5, "loss": float("inf")})
    assert os.environ["WANDB_SILENT"] == "true"
    init = calls[0][1]
    assert {k: init[k] for k in ("project", "name", "dir", "config", "resume")} == {
        "project": "p", "name": "r", "dir": str(tmp_path), "config": {}, "resume": "allow",
    }
    assert json.loads((tmp_path / "tracker_ids.json").read_text()) == {"wandb": init["id"]}
    assert calls[1] == ("log", {"reward_mean": 0.5}, 3)
    assert calls[-1] == ("finish",)


def test_tensorboard_sink_writes_under_the_experiment_dir(tmp_path, monkeypatch):
    calls = []

    class SummaryWriter:
        def __init__(self, log_dir):
            calls.append(("init", log_dir))

        def add_scalar(self, tag, value, step):
            calls.append(("scalar", tag, value, step))

        def flush(self):
            pass

        def close(self):
            calls.append(("close",))

    fake = types.ModuleType("torch.utils.tensorboard")
    fake.SummaryWriter = SummaryWriter
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", fake)
    with MetricsLogger(tmp_path, tracker="tensorboard", echo=False, plot_every=100) as log:
        log.log(5, {"reward_mean": 0.25})
    assert calls == [("init", str(tmp_path / "tensorboard")), ("scalar", "reward_mean", 0.25, 5), ("close",)]


def test_swanlab_sink_logs_into_the_experiment_dir(tmp_path, monkeypatch):
    calls = []
    fake = types.ModuleType("swanlab")
    fake.init = lambda **kw: calls.append(("init", kw))
    fake.log = lambda data, step: calls.append(("log", data, step))
    fake.finish = lambda: calls.append(("finish",))
    monkeypatch.setitem(sys.modules, "swanlab", fake)
    with MetricsLogger(tmp_path, tracker="swanlab", run_name="r", echo=False) as log:
        log.log(1, {"success_rate": 1.0})
    assert calls[0][1]["logdir"] == str(tmp_path / "swanlog") and calls[0][1]["experiment_name"] == "r"
    assert calls[1] == ("log", {"success_rate": 1.0}, 1) and calls[-1] == ("finish",)


def test_from_config_reads_tracker_project_and_plot_every(tmp_path):
    conf = tmp_path / "c.yaml"
    conf.write_text(
        "astuner:\n  project_name: proj\n  experiment_name: exp1\n"
        "  trainer_common:\n    logger: [console]\n  logview:\n    plot_every: 7\n"
    )
    log = MetricsLogger.from_config(load_config(conf), tmp_path / "exp1", echo=False)
    assert log.plot_every == 7 and log.sinks == [] and log.path == tmp_path / "exp1" / METRICS_FILE
