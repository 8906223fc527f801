"""The tool-discipline experiment's parts: problem generator, scripted teacher, SFT loss, report.

The teacher tests run the unchanged tutorial workflow (ReActAgent, astuner's sandboxed Python tool,
the rule judge and the bad-case detectors) with the teacher as the engine, so they check that each
scripted behaviour is exactly the seed bad case it stands for. The end-to-end CPU miniature is in
``test_tool_discipline_e2e.py``.
"""

from __future__ import annotations

import json
import random
import re

import pytest
import torch

from astuner.task_judge.bad_cases import BAD_CASES
from experiments.tool_discipline import problems as gen
from experiments.tool_discipline import report
from experiments.tool_discipline.teacher import BAD_CASE_OF, BEHAVIOURS, TeacherEngine, TeacherRates, guess_for
from tests.conftest import REPO

pytestmark = pytest.mark.integration

CONFIG = REPO / "tutorial" / "example_math_agent" / "tool_discipline.yaml"


def test_templates_are_many_and_take_one_to_three_steps():
    assert len(gen.TEMPLATES) >= 20
    assert len({t.name for t in gen.TEMPLATES}) == len(gen.TEMPLATES)
    assert {len(t.steps) for t in gen.TEMPLATES} == {1, 2, 3}


@pytest.mark.parametrize("template", gen.TEMPLATES, ids=lambda t: t.name)
def test_every_template_makes_correct_gsm8k_problems(template):
    rng = random.Random(5)
    for _ in range(20):
        p = gen.make_problem(template, rng)
        assert p.answer.endswith(f"#### {p.value}")
        assert p.code.startswith("print(") and eval(p.code[len("print("):-1], {"__builtins__": {}}) == p.value
        for expr, value in re.findall(r"<<([^=]+)=(\d+)>>", p.answer):
            assert eval(expr, {"__builtins__": {}}) == int(value)
        numbers = [int(n) for n in re.findall(r"\d+", p.question)]
        assert p.value not in numbers
        assert int(guess_for(p.question)) != p.value
        assert "{" not in p.question


def test_splits_are_disjoint_and_read_by_the_dataset_file_reader(tmp_path):
    from astuner.config.schema import TaskReaderConfig
    from astuner.task_reader import build_task_reader

    train, val = gen.generate_sets((120, 40), seed=3)
    assert not {p.question for p in train} & {p.question for p in val}
    assert len({p.question for p in train}) == 120
    gen.write_jsonl(train, tmp_path / "train.jsonl")
    gen.write_jsonl(val, tmp_path / "val.jsonl")
    block = {"training": {"file_path": str(tmp_path / "train.jsonl")}, "validation": {"file_path": str(tmp_path / "val.jsonl")}}
    reader = build_task_reader(TaskReaderConfig.model_validate({"type": "dataset_file", "dataset_file": block}), shuffle=False)
    tasks = reader.get_training_tasks()
    assert [t.main_query for t in tasks] == [p.question for p in train]
    assert tasks[0].metadata["answer"] == train[0].answer
    assert len(reader.get_validation_tasks()) == 40
    assert gen.generate_sets((120, 40), seed=3) == [train, val]


def test_sft_train_and_val_sets_are_pairwise_disjoint_and_stable():
    sft, train, val = gen.generate_sets((300, 80, 40), seed=5)
    questions = [{(p.template, p.code) for p in part} for part in (sft, train, val)]
    assert [len(q) for q in questions] == [300, 80, 40]
    assert not (questions[0] & questions[1] or questions[0] & questions[2] or questions[1] & questions[2])
    assert gen.generate_sets((300, 80), seed=5) == [sft, train], "earlier sets must not depend on later counts"
    assert [p.template for p in sft[:3]] == [t.name for t in gen.TEMPLATES[:3]]


def test_a_used_up_template_is_skipped_and_asking_for_more_than_exists_is_a_clear_error():
    narrow = gen._t("narrow", "{name} has {a} {item} and gets {b} more. How many?", "a + b", a=(2, 5), b=(2, 5))
    wide = gen.TEMPLATES[1]
    (problems,) = gen.generate_sets((60,), seed=1, templates=(narrow, wide))
    codes = [(p.template, p.code) for p in problems]
    assert len(set(codes)) == 60
    narrow_codes = {c for t, c in codes if t == "narrow"}
    # 2..5 + 2..5 without an answer equal to an operand: every pair but none is valid, so 16 pairs.
    assert len(narrow_codes) == 16, "the narrow template is drawn until its computations are used up"
    assert [p.template for p in problems[-10:]] == ["get_more"] * 10
    with pytest.raises(ValueError, match="cannot draw"):
        gen.generate_sets((20,), seed=1, templates=(narrow,))


def test_grpo_child_is_stopped_with_its_process_group_at_the_deadline(tmp_path):
    import sys
    import time

    from experiments.tool_discipline import grpo

    pid_file = tmp_path / "grandchild.pid"
    script = ("import subprocess, sys, time; "
              "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)']); "
              f"open({str(pid_file)!r}, 'w').write(str(p.pid)); time.sleep(120)")
    started = time.monotonic()
    code, stopped = grpo.run([sys.executable, "-c", script], timeout_s=8)  # time to start both
    assert stopped and code is not None and code != 0
    assert time.monotonic() - started < 30
    grandchild = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            state = open(f"/proc/{grandchild}/stat").read().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            break
        if state == "Z":
            break
        time.sleep(0.1)
    else:
        raise AssertionError("the GRPO child's own child outlived the deadline stop")
    assert grpo.run([sys.executable, "-c", "raise SystemExit(3)"], timeout_s=30) == (3, False)


def test_teacher_rates_are_reproducible_and_near_their_values():
    rates = TeacherRates(no_print=0.2, impatient=0.1, malformed=0.05)
    teacher = TeacherEngine([], tokenizer=None, end_of_turn_id=0, rates=rates, seed=1)
    drawn = [teacher.behaviour_for(f"task-{i}") for i in range(4000)]
    assert drawn == [TeacherEngine([], None, 0, rates, seed=1).behaviour_for(f"task-{i}") for i in range(4000)]
    for name, expected in (("no_print", 0.2), ("impatient", 0.1), ("malformed", 0.05), ("good", 0.65)):
        assert abs(drawn.count(name) / len(drawn) - expected) < 0.025
    with pytest.raises(ValueError):
        TeacherRates(no_print=0.7, impatient=0.3, malformed=0.1)


@pytest.fixture(scope="module")
def workflow_setup(tmp_path_factory):
    """The tutorial config, the tiny tokenizer and six generated problems as tasks."""
    from transformers import AutoTokenizer

    from astuner.chat_template import ChatTemplate
    from astuner.config import load_config
    from astuner.tiny_model import build_tiny_model
    from experiments.tool_discipline.pipeline import load_tasks, path_overrides

    out = tmp_path_factory.mktemp("td")
    train, val = gen.generate_sets((6, 2), seed=11)
    gen.write_jsonl(train, out / "data" / "train.jsonl")
    gen.write_jsonl(val, out / "data" / "val.jsonl")
    config = load_config(CONFIG, path_overrides(out))
    tasks, _ = load_tasks(config)
    tokenizer = AutoTokenizer.from_pretrained(str(build_tiny_model(out / "tiny")))
    return config, tokenizer, ChatTemplate(tokenizer).turn.end_of_turn_id, train, tasks


@pytest.mark.parametrize("behaviour", BEHAVIOURS)
def test_each_teacher_behaviour_is_exactly_its_bad_case_in_the_real_workflow(workflow_setup, behaviour):
    from experiments.tool_discipline.traces import collect

    config, tokenizer, eot, problems, tasks = workflow_setup
    teacher = TeacherEngine(problems, tokenizer, eot, behaviour=behaviour)
    results = collect(config, tokenizer, teacher, tasks)
    assert [r.error for r in results] == [None] * len(tasks)
    for r in results:
        flagged = {k for k, v in r.bad_cases.items() if v}
        assert flagged == ({BAD_CASE_OF[behaviour]} if behaviour != "good" else set())
        assert r.is_success is (behaviour == "good")
        assert r.reward == (1.0 if behaviour == "good" else -0.5)
        assert len(r.samples) == 1 and sum(r.samples[0].loss_mask) > 0
        transcript = teacher.transcripts[r.rollout_id]
        assert transcript.startswith("<|im_start|>system") and "execute_python_code" in transcript


def test_teacher_traces_from_two_processes_equal_the_in_process_ones(workflow_setup):
    from experiments.tool_discipline.traces import TeacherSpec, collect_teacher

    config, tokenizer, _, problems, tasks = workflow_setup
    spec = TeacherSpec(tuple(problems), tokenizer.name_or_path, TeacherRates(no_print=0.3, impatient=0.2, malformed=0.2), 3)

    def digest(results):
        return [(r.rollout_id, r.reward, sorted(k for k, v in r.bad_cases.items() if v), [s.token_ids for s in r.samples])
                for r in results]

    here = digest(collect_teacher(config, spec, tasks, num_repeat=2, processes=1))
    assert len(here) == 2 * len(tasks) and len({tuple(d[2]) for d in here}) > 1, "the rates must mix behaviours"
    assert digest(collect_teacher(config, spec, tasks, num_repeat=2, processes=2)) == here


def test_sft_loss_equals_the_trainers_logprobs_with_and_without_a_shared_prefix(workflow_setup, tmp_path):
    from transformers import AutoModelForCausalLM

    from astuner.backbone.policy_trainer import trained_logprobs
    from astuner.tiny_model import build_tiny_model
    from experiments.tool_discipline.sft import shared_prefix, sft_loss
    from experiments.tool_discipline.traces import collect

    config, tokenizer, eot, problems, tasks = workflow_setup
    results = collect(config, tokenizer, TeacherEngine(problems, tokenizer, eot, seed=4), tasks, num_repeat=2)
    samples = [s for r in results for s in r.samples]
    model = AutoModelForCausalLM.from_pretrained(str(build_tiny_model(tmp_path / "tiny")), dtype=torch.float32)
    device = torch.device("cpu")
    assert shared_prefix(samples) > 100
    for batch in (samples, samples[:1]):
        expected = -torch.cat(trained_logprobs(model, batch, device, 1.0)).mean()
        assert torch.allclose(sft_loss(model, batch, device), expected, atol=1e-5)


def _val_record(task_id: str, success: bool, flags: dict[str, bool]) -> dict:
    tokens = ["<|im_start|>", "system", "<|im_end|>", "<|im_start|>", "user", "\n", "Q", "<|im_start|>", "assistant", "\n", "A", "<|im_end|>"]
    return {
        "task_id": task_id, "reward": 1.0 if success else -0.5, "is_success": success, "final_answer": "\\boxed{1}",
        "bad_cases": flags,
        "messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"},
                     {"role": "assistant", "content": "A", "tool_calls": [{"function": {"name": "generate_response", "arguments": {"result": "1"}}}]}],
        "samples": [{"tokens": tokens, "token_ids": list(range(len(tokens))), "loss_mask": [0] * 10 + [1, 1]}],
    }


def test_report_reads_before_and_after_and_checks_the_targets(tmp_path):
    run = tmp_path / "grpo"
    (run / "rollouts").mkdir(parents=True)
    before = {"val/success_rate": 0.5, "val/reward_mean": 0.2, "val/bad_case/malformed_tool_call": 0.15,
              "val/bad_case/empty_tool_stdout": 0.2, "val/bad_case/answer_before_tool_response": 0.0}
    after = {"val/success_rate": 0.95, "val/reward_mean": 0.9, "val/bad_case/malformed_tool_call": 0.01,
             "val/bad_case/empty_tool_stdout": 0.05, "val/bad_case/answer_before_tool_response": 0.0}
    rows = [{"step": 0, **before}, {"step": 1, "reward_mean": 0.3}, {"step": 2, "reward_mean": 0.5, **after}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    none = dict.fromkeys(BAD_CASES, False)
    (run / "rollouts" / "val_step_000000.jsonl").write_text(
        json.dumps(_val_record("7", False, {**none, "empty_tool_stdout": True})) + "\n")
    (run / "rollouts" / "val_step_000002.jsonl").write_text(
        json.dumps(_val_record("3", True, none)) + "\n" + json.dumps(_val_record("7", True, none)) + "\n")
    results = report.build(run)
    assert results["before"]["success_rate"] == 0.5 and results["after"]["success_rate"] == 0.95
    t = results["targets"]
    assert t["success_before<=0.6"] and t["success_after>=0.9"]
    assert t["malformed_tool_call falls >=5x"] is True and t["empty_tool_stdout falls >=5x"] is False
    assert t["answer_before_tool_response falls >=5x"] is None and t["all_met"] is False
    assert [c["label"] for c in results["cases"]] == ["before: empty_tool_stdout", "after: clean tool use"]
    assert results["cases"][1]["task_id"] == "7"
    runs = results["cases"][1]["token_runs"]
    assert [r["mask"] for r in runs] == [0, 1] and runs[0]["tokens"][0] == [3, "<|im_start|>"]
    assert [c["step"] for c in results["curve"]] == [1, 2]
    assert "| success_rate | 0.500 | 0.950 |" in report.markdown({**results, "profile": "cpu", "device": "cpu"})


def test_report_of_a_run_stopped_at_its_deadline_uses_the_newest_validation(tmp_path):
    run = tmp_path / "grpo"
    run.mkdir()
    val = {f"val/{k}": 0.1 for k in report.METRICS}
    rows = [{"step": 0, **val}, {"step": 1, "reward_mean": 0.3}, {"step": 2, "reward_mean": 0.4, **{**val, "val/success_rate": 0.7}},
            {"step": 3, "reward_mean": 0.5}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    results = report.build(run)
    assert (results["steps_trained"], results["validated_at_step"], results["after"]["success_rate"]) == (3, 2, 0.7)
    assert results["cases"] == []
    text = report.markdown({**results, "grpo_stopped_at_deadline": True})
    assert "GRPO steps trained: 3; 'after' is the validation at step 2; stopped at the deadline" in text
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:2]))
    with pytest.raises(ValueError, match="no validation after step 0"):
        report.build(run)


def test_figures_draw_curves_bars_and_tokens_with_dollar_signs(tmp_path):
    import warnings

    from experiments.tool_discipline import figures

    metrics = {k: 0.2 for k in report.METRICS}
    rows = [{"step": 0, **{f"val/{k}": v for k, v in metrics.items()}}]
    png = figures.plot_run(rows, metrics, {**metrics, "success_rate": 0.9}, tmp_path / "curve.png", "no training rows")
    assert png.stat().st_size > 10_000
    runs = [{"mask": 0, "tokens": [[1, "<|im_start|>"], [5, "\x05\n"], [7, " $"], [8, "4"], [9, " $"]]}, {"mask": 1, "tokens": [[2, "$5 and $6"]]}]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a missing glyph (an unprintable token) warns
        assert figures.plot_tokens(runs, tmp_path / "tokens.png", "dollars").stat().st_size > 5_000


def test_sft_schedule_and_shared_prefix():
    from astuner.schema import Sample
    from experiments.tool_discipline.sft import SFTSettings, learning_rate, shared_prefix

    settings = SFTSettings(steps=100, lr=1.0, warmup_fraction=0.1, min_lr_fraction=0.1)
    assert learning_rate(0, 100, settings) == pytest.approx(0.1)
    assert learning_rate(9, 100, settings) == pytest.approx(1.0)
    assert learning_rate(100, 100, settings) == pytest.approx(0.1)
    assert all(learning_rate(s, 100, settings) >= learning_rate(s + 1, 100, settings) for s in range(10, 100))

    def sample(ids: list[int], first_trained: int) -> Sample:
        mask = [0] * first_trained + [1] * (len(ids) - first_trained)
        return Sample(token_ids=ids, loss_mask=mask, logprobs=[0.0] * len(ids), reward=0.0, group_id="g", rollout_id="r",
                      prompt_length=first_trained)

    # Shared tokens run up to the token before the first trained one, never into it.
    assert shared_prefix([sample([1, 2, 3, 4, 5, 6], 4), sample([1, 2, 3, 4, 9, 9], 4)]) == 3
    assert shared_prefix([sample([1, 2, 3, 4, 5], 4), sample([1, 2, 7, 4, 5], 4)]) == 2


def test_command_line_settings_change_one_profile_field_each():
    from experiments.tool_discipline.__main__ import main, with_settings
    from experiments.tool_discipline.profiles import PROFILES

    gpu = PROFILES["gpu"]
    changed = with_settings(gpu, ["n_sft=32000", "sft.steps=1200", "rates.no_print=0.3", "trace_processes=8", "deadline_s=500"])
    assert (changed.n_sft, changed.sft.steps, changed.rates.no_print, changed.trace_processes, changed.deadline_s) == (32000, 1200, 0.3, 8, 500.0)
    assert (changed.sft.short_steps, changed.rates.impatient, changed.n_train) == (gpu.sft.short_steps, gpu.rates.impatient, gpu.n_train)
    for bad in (["n_sf=1"], ["sft=1"], ["n_sft"], ["rates.no_print=0.9", "rates.impatient=0.9"]):
        with pytest.raises(ValueError):
            with_settings(gpu, bad)
    with pytest.raises(SystemExit) as exit_info:
        main(["--set", "n_sf=1"])
    assert exit_info.value.code == 2
