"""Before/after numbers, target checks and example cases from a finished GRPO run directory.

Why from the run's own files: the local backbone already validates before the first step, every
``test_freq`` steps and after the last (``val/*`` rows of ``metrics.jsonl``) and writes every validation rollout with its tokens
and masks (``rollouts/val_step_<N>.jsonl``). Reading those keeps the reported numbers the ones the
trainer logged, and the example cases real rollouts of the policy rather than re-created ones.
"After" is the newest validation: after the last step, or, for a run stopped at its deadline, the
newest periodic one (``validated_at_step`` says which; ``steps_trained`` how far training got).

Targets (issue 5): validation success rises from at most 0.6 to at least 0.9, and each bad-case
rate falls at least fivefold (a rate that was already 0 cannot; it is reported as not applicable).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from astuner.metrics import read_metrics
from astuner.task_judge.bad_cases import BAD_CASES

METRICS = ("success_rate", "reward_mean", *(f"bad_case/{name}" for name in BAD_CASES))
CURVE_KEYS = ("reward_mean", "success_rate", *(f"bad_case/{name}" for name in BAD_CASES), "pg_loss", "step_time_s")
TARGET_SUCCESS_BEFORE, TARGET_SUCCESS_AFTER, TARGET_FACTOR = 0.6, 0.9, 5.0


def before_after(rows: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The validation rows logged before training (step 0) and the newest one after it."""
    val_rows = [r for r in rows if "val/success_rate" in r]
    if not val_rows or val_rows[0].get("step") != 0:
        raise ValueError("metrics.jsonl has no step-0 validation: the run needs trainer_common.val_before_train")
    if len(val_rows) < 2:
        raise ValueError("metrics.jsonl has no validation after step 0: the run stopped (deadline or error) "
                         "before its first periodic validation (trainer_common.test_freq)")
    return val_rows[0], val_rows[-1]


def targets(before: dict[str, float], after: dict[str, float]) -> dict[str, Any]:
    """Each target with the measured values and whether it is met."""
    checks: dict[str, Any] = {
        "success_before<=0.6": before["success_rate"] <= TARGET_SUCCESS_BEFORE,
        "success_after>=0.9": after["success_rate"] >= TARGET_SUCCESS_AFTER,
    }
    for name in BAD_CASES:
        b, a = before[f"bad_case/{name}"], after[f"bad_case/{name}"]
        checks[f"{name} falls >=5x"] = None if b == 0 else a * TARGET_FACTOR <= b
    checks["all_met"] = all(v is not False for v in checks.values())
    return checks


def _read_rollouts(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def conversation(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The turns after the system prompt: role and text, tool calls written out as the model wrote them."""
    turns = []
    for message in record.get("messages", []):
        if message.get("role") == "system":
            continue
        text = str(message.get("content") or "")
        for call in message.get("tool_calls") or []:
            fn = call.get("function", call)
            text += ("\n" if text else "") + "<tool_call>\n" + json.dumps({"name": fn.get("name"), "arguments": fn.get("arguments")}) + "\n</tool_call>"
        turns.append({"role": message.get("role"), "text": text})
    return turns


def token_runs(record: dict[str, Any], start: str = "<|im_start|>") -> list[dict[str, Any]]:
    """The rollout's first sample from its first user turn on, as runs of equal loss mask:
    ``{"mask", "tokens": [[id, text], ...]}``."""
    if not record.get("samples"):
        return []
    sample = record["samples"][0]
    tokens, ids, mask = sample["tokens"], sample["token_ids"], sample["loss_mask"]
    begin = 0
    for i in range(len(tokens) - 1):
        if tokens[i] == start and tokens[i + 1].startswith("user"):
            begin = i
            break
    runs: list[dict[str, Any]] = []
    for i in range(begin, len(tokens)):
        if not runs or runs[-1]["mask"] != mask[i]:
            runs.append({"mask": mask[i], "tokens": []})
        runs[-1]["tokens"].append([ids[i], tokens[i]])
    return runs


def _case(record: dict[str, Any], label: str, with_tokens: bool) -> dict[str, Any]:
    case = {
        "label": label,
        "task_id": record["task_id"],
        "reward": record["reward"],
        "is_success": record["is_success"],
        "final_answer": record.get("final_answer"),
        "bad_cases": [k for k, v in record.get("bad_cases", {}).items() if v],
        "conversation": conversation(record),
    }
    if with_tokens:
        case["token_runs"] = token_runs(record)
    return case


def pick_cases(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One rollout per bad case from before training (preferring one with only that flag, so the
    example shows that case alone), and a clean success after it (same task when possible), with
    the token view of the first bad case and of the good case."""
    cases = []
    for name in BAD_CASES:
        flagged = [r for r in before if r.get("bad_cases", {}).get(name)]
        flagged.sort(key=lambda r: sum(bool(v) for v in r.get("bad_cases", {}).values()))
        if flagged:
            cases.append(_case(flagged[0], f"before: {name}", with_tokens=not cases))
    clean = [r for r in after if r["is_success"] and not any(r.get("bad_cases", {}).values())]
    if clean:
        wanted = {c["task_id"] for c in cases}
        good = next((r for r in clean if r["task_id"] in wanted), clean[0])
        cases.append(_case(good, "after: clean tool use", with_tokens=True))
    return cases


def build(grpo_dir: str | Path) -> dict[str, Any]:
    """Everything the docs report about one finished GRPO run directory."""
    run = Path(grpo_dir)
    rows = read_metrics(run / "metrics.jsonl")
    before_row, after_row = before_after(rows)
    before = {k: before_row[f"val/{k}"] for k in METRICS}
    after = {k: after_row[f"val/{k}"] for k in METRICS}
    curve = [{k: r.get(k) for k in ("step", *CURVE_KEYS)} for r in rows if r.get("step", 0) > 0]
    cases = pick_cases(
        _read_rollouts(run / "rollouts" / "val_step_000000.jsonl"),
        _read_rollouts(run / "rollouts" / f"val_step_{after_row['step']:06d}.jsonl"),
    )
    return {
        "steps_trained": max(r.get("step", 0) for r in rows),
        "validated_at_step": after_row["step"],
        "before": before,
        "after": after,
        "targets": targets(before, after),
        "curve": curve,
        "cases": cases,
    }


def _fmt(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def token_view_text(runs: list[dict[str, Any]], width: int = 110) -> str:
    """Runs as text lines: ``mask 0 | <|im_start|>|user|...`` with each token's text, wrapped."""
    lines = []
    for run in runs:
        text = "|".join(t.replace("\n", "\\n") for _, t in run["tokens"])
        prefix = f"mask {run['mask']} | "
        while text:
            lines.append(prefix + text[:width])
            text, prefix = text[width:], " " * len(prefix)
    return "\n".join(lines)


def markdown(results: dict[str, Any]) -> str:
    """A human-readable summary: the before/after table, targets, timings and the cases."""
    b, a = results["before"], results["after"]
    out = [f"# Tool discipline: profile `{results.get('profile')}` on {results.get('device')}", "",
           f"GRPO steps trained: {results['steps_trained']}; 'after' is the validation at step "
           f"{results['validated_at_step']}" + ("; stopped at the deadline" if results.get("grpo_stopped_at_deadline") else ""), "",
           "| metric (validation) | before GRPO | after GRPO |", "|---|---:|---:|"]
    out += [f"| {k} | {_fmt(b[k])} | {_fmt(a[k])} |" for k in METRICS]
    out += ["", "Targets: " + ", ".join(f"{k}: {v}" for k, v in results["targets"].items()), ""]
    if results.get("timings"):
        out += ["Timings (s): " + ", ".join(f"{k} {v:.0f}" for k, v in results["timings"].items()), ""]
    for case in results["cases"]:
        out += [f"## {case['label']} (task {case['task_id']}, reward {case['reward']}, success {case['is_success']}, "
                f"flags {case['bad_cases'] or 'none'})", "", "```text"]
        out += [f"[{t['role']}] {t['text']}" for t in case["conversation"]]
        out += ["```", ""]
        if case.get("token_runs"):
            out += ["Token view (loss mask per run, tokens separated by |):", "", "```text",
                    token_view_text(case["token_runs"]), "```", ""]
    return "\n".join(out) + "\n"
