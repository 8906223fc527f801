"""The log viewer's JSON API and server lifecycle, on synthetic experiment directories (no browser)."""

from __future__ import annotations

import json
import random
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from astuner.logview import spawn_logview, start_logview
from astuner.logview.__main__ import main as logview_main
from astuner.logview.session import logview_for_run
from astuner.procs import kill_registered
from tests.conftest import REPO

pytestmark = pytest.mark.integration


def synthetic_rollout(n_tokens: int, *, task_id: str = "t0", reward: float = 1.0, success: bool = True,
                      bad: dict | None = None, seed: int = 0) -> dict:
    """A rollout record in the artifact format: ChatML turns, user turns untrained, assistant turns trained."""
    rnd = random.Random(seed)
    words = [" the", " tool", "\n", " 42", "print", "(", ")", " answer", "<tool_call>", " is", "."]
    ids, mask, logprobs, tokens = [], [], [], []
    turn = 0
    while len(ids) < n_tokens:
        trained = turn % 2 == 1
        for text in ("<|im_start|>", "assistant" if trained else "user", "\n"):
            ids.append(1), mask.append(0), logprobs.append(0.0), tokens.append(text)
        for _ in range(rnd.randint(20, 400)):
            ids.append(rnd.randint(3, 150_000))
            mask.append(int(trained))
            logprobs.append(-rnd.expovariate(1.0) if trained else 0.0)
            tokens.append(rnd.choice(words))
        ids.append(2), mask.append(int(trained)), logprobs.append(-0.01 if trained else 0.0), tokens.append("<|im_end|>")
        turn += 1
    sample = {"token_ids": ids[:n_tokens], "loss_mask": mask[:n_tokens], "logprobs": logprobs[:n_tokens],
              "tokens": tokens[:n_tokens]}
    return {
        "task_id": task_id, "repeat_index": 0, "rollout_id": f"T{task_id}#R0", "reward": reward, "is_success": success,
        "final_answer": "\\boxed{42}", "bad_cases": bad or {"empty_tool_stdout": False}, "madness": {"nonsense": False},
        "num_calls": 2, "num_tool_calls": 1, "error": None,
        "messages": [
            {"role": "user", "content": "What is 6*7?"},
            {"role": "assistant", "content": "", "tool_calls": [
                {"type": "function", "function": {"name": "execute_python_code", "arguments": {"code": "print(6*7)"}}}]},
            {"role": "tool", "name": "execute_python_code", "content": "<returncode>0</returncode><stdout>42\n</stdout>"},
            {"role": "assistant", "content": "\\boxed{42}"},
        ],
        "samples": [sample],
    }


def write_rollouts(path: Path, records: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
    return path


@pytest.fixture()
def exp_root(tmp_path):
    root = tmp_path / "exps"
    records = [
        synthetic_rollout(300, task_id="a1", reward=1.0, success=True, seed=1),
        synthetic_rollout(300, task_id="a2", reward=0.0, success=False, bad={"empty_tool_stdout": True}, seed=2),
        synthetic_rollout(300, task_id="b10", reward=0.5, success=False, seed=3),
    ]
    write_rollouts(root / "run1" / "rollouts" / "step_2.jsonl", records[:2])
    write_rollouts(root / "run1" / "rollouts" / "step_10.jsonl", records[2:])
    (root / "run1" / "metrics.jsonl").write_text(
        "".join(json.dumps({"step": s, "time": 0, "reward_mean": s / 10, "success_rate": s / 20}) + "\n" for s in range(1, 6))
    )
    (root / "not_an_experiment").mkdir()
    (root / "secret.jsonl").write_text("{}\n")
    return root


@pytest.fixture()
def server(exp_root):
    with start_logview(exp_root, port=0) as srv:
        yield srv


def get(srv, path: str, host: str | None = None) -> tuple[int, bytes, dict]:
    req = urllib.request.Request(srv.url + path.lstrip("/"))
    if host is not None:
        req.add_header("Host", host)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read(), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)


def get_json(srv, path: str):
    status, body, _ = get(srv, path)
    assert status == 200, (path, body)
    return json.loads(body)


def test_experiments_lists_only_dirs_with_rollouts_or_metrics(server):
    data = get_json(server, "/api/experiments")
    assert [e["name"] for e in data["experiments"]] == ["run1"]
    run = data["experiments"][0]
    assert run["rollout_files"] == ["step_2.jsonl", "step_10.jsonl"]  # natural order
    assert run["has_metrics"] is True


def test_rollout_rows_are_compact_and_filterable(server):
    page = get_json(server, "/api/rollouts?exp=run1")
    assert (page["total"], page["matched"]) == (3, 3)
    row = page["rows"][0]
    assert {"file", "index", "task_id", "reward", "is_success", "bad_cases", "n_tokens", "n_trained"} <= set(row)
    assert "samples" not in row and "token_ids" not in row and row["n_tokens"] == 300
    assert page["bad_case_names"] == ["empty_tool_stdout"]

    def ids(query):
        return [r["task_id"] for r in get_json(server, "/api/rollouts?exp=run1&" + query)["rows"]]

    assert ids("success=1") == ["a1"]
    assert ids("success=0") == ["a2", "b10"]
    assert ids("reward_min=0.25&reward_max=0.75") == ["b10"]
    assert ids("bad_case=empty_tool_stdout") == ["a2"]
    assert ids("bad_case=any") == ["a2"]
    assert ids("bad_case=none") == ["a1", "b10"]
    assert ids("task_id=A") == ["a1", "a2"]
    assert ids("file=step_10.jsonl") == ["b10"]
    paged = get_json(server, "/api/rollouts?exp=run1&offset=1&limit=1")
    assert [r["task_id"] for r in paged["rows"]] == ["a2"] and paged["matched"] == 3


def test_one_rollout_in_full(server):
    data = get_json(server, "/api/rollout?exp=run1&file=step_2.jsonl&index=1")
    assert data["task_id"] == "a2"
    assert len(data["samples"][0]["token_ids"]) == len(data["samples"][0]["tokens"]) == 300


def test_nan_and_infinity_in_a_rollout_reach_the_browser_as_null(exp_root, server):
    record = synthetic_rollout(10, task_id="nan")
    record["samples"][0]["logprobs"][3] = float("-inf")
    record["reward"] = float("nan")
    write_rollouts(exp_root / "run1" / "rollouts" / "step_10.jsonl", [record])
    data = get_json(server, "/api/rollout?exp=run1&file=step_10.jsonl&index=1")
    assert data["reward"] is None and data["samples"][0]["logprobs"][3] is None


def test_advantage_in_rows_and_bad_cases_located_per_rollout(exp_root, server):
    tokens = ["<|im_start|>", "user", "\n", "Q", "<|im_end|>", "\n", "<|im_start|>", "assistant", "\n", "<|im_end|>"]
    sample = {"token_ids": list(range(10)), "loss_mask": [0] * 9 + [1], "logprobs": [0.0] * 10, "tokens": tokens,
              "advantage": -0.5}
    record = {**synthetic_rollout(10, task_id="adv"), "bad_cases": {"empty_reply": True}, "samples": [sample]}
    write_rollouts(exp_root / "run1" / "rollouts" / "step_10.jsonl", [record])
    rows = get_json(server, "/api/rollouts?exp=run1")["rows"]
    assert [(r["task_id"], r["advantage"]) for r in rows] == [("a1", None), ("a2", None), ("b10", None), ("adv", -0.5)]
    found = get_json(server, "/api/bad_cases?exp=run1&file=step_10.jsonl&index=1")
    assert found == {"advantage": -0.5, "bad_cases": [{"flag": "empty_reply", "kind": "bad_case", "note": None, "locations": [
        {"sample": 0, "call": 0, "start": 9, "end": 10, "call_start": 9, "call_end": 10, "message": None,
         "what": "a completion with no text and no tool call"}]}]}
    assert get_json(server, "/api/bad_cases?exp=run1&file=step_2.jsonl&index=0") == {"advantage": None, "bad_cases": []}


def test_metrics_and_curve(server):
    rows = get_json(server, "/api/metrics?exp=run1")["rows"]
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5]
    pytest.importorskip("matplotlib", reason="matplotlib draws the curve")
    status, body, headers = get(server, "/api/curve.png?exp=run1")
    assert status == 200 and headers["Content-Type"] == "image/png" and body.startswith(b"\x89PNG\r\n\x1a\n")


@pytest.mark.parametrize("path", [
    "/api/rollouts?exp=..",
    "/api/rollouts?exp=%2e%2e",
    "/api/rollouts?exp=../exps/run1",
    "/api/rollouts?exp=/etc",
    "/api/rollouts?exp=not_an_experiment",
    "/api/rollout?exp=run1&file=../metrics.jsonl&index=0",
    "/api/rollout?exp=run1&file=..%2F..%2Fsecret.jsonl&index=0",
    "/api/rollout?exp=run1&file=/etc/passwd&index=0",
    "/api/rollout?exp=run1&file=step_2.jsonl&index=99",
    "/api/bad_cases?exp=run1&file=../metrics.jsonl&index=0",
    "/api/bad_cases?exp=run1&file=step_2.jsonl&index=99",
    "/api/metrics?exp=..",
    "/static/../server.py",
    "/static/%2e%2e/server.py",
    "/static/store.py",
])
def test_paths_stay_inside_the_root(server, path):
    status, body, _ = get(server, path)
    assert status == 404, (path, status, body[:200])


def test_symlink_out_of_the_root_is_refused(tmp_path, exp_root, server):
    outside = tmp_path / "outside"
    write_rollouts(outside / "rollouts" / "x.jsonl", [synthetic_rollout(5)])
    (exp_root / "linked").symlink_to(outside)
    (exp_root / "run1" / "rollouts" / "leak.jsonl").symlink_to(outside / "rollouts" / "x.jsonl")
    assert "linked" not in [e["name"] for e in get_json(server, "/api/experiments")["experiments"]]
    assert get(server, "/api/rollouts?exp=linked")[0] == 404
    assert get(server, "/api/rollout?exp=run1&file=leak.jsonl&index=0")[0] == 404


def test_bad_parameters_are_400(server):
    assert get(server, "/api/rollouts")[0] == 400
    assert get(server, "/api/rollouts?exp=run1&offset=x")[0] == 400
    assert get(server, "/api/rollouts?exp=run1&reward_min=high")[0] == 400


def test_foreign_host_header_is_refused(server):
    assert get(server, "/api/experiments", host="evil.example:80")[0] == 403
    assert get(server, "/api/experiments", host=f"localhost:{server.port}")[0] == 200


def test_page_is_self_contained(server):
    status, html, headers = get(server, "/")
    assert status == 200 and b"<script src=\"/static/app.js\">" in html
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    for name in ("app.js", "rollout.js", "tokens.js", "marks.js", "app.css"):
        status, body, _ = get(server, f"/static/{name}")
        assert status == 200
        assert b"http://" not in body and b"https://" not in body, f"{name} must not load anything from elsewhere"


def test_appended_rollouts_show_up_and_partial_lines_wait(exp_root, server):
    path = exp_root / "run1" / "rollouts" / "step_2.jsonl"
    assert get_json(server, "/api/rollouts?exp=run1&file=step_2.jsonl")["total"] == 2
    line = json.dumps(synthetic_rollout(20, task_id="late"))
    with path.open("a") as f:
        f.write(line[:50])
    assert get_json(server, "/api/rollouts?exp=run1&file=step_2.jsonl")["total"] == 2
    with path.open("a") as f:
        f.write(line[50:] + "\n")
    page = get_json(server, "/api/rollouts?exp=run1&file=step_2.jsonl")
    assert page["total"] == 3 and page["rows"][-1]["task_id"] == "late"
    path.write_text(line + "\n")  # rewritten shorter: indexed again from the start
    page = get_json(server, "/api/rollouts?exp=run1&file=step_2.jsonl")
    assert [r["task_id"] for r in page["rows"]] == ["late"]
    assert get_json(server, "/api/rollout?exp=run1&file=step_2.jsonl&index=0")["task_id"] == "late"


def test_taken_port_moves_to_the_next_and_says_so(exp_root):
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    taken = blocker.getsockname()[1]
    said = []
    try:
        with start_logview(exp_root, port=taken, say=said.append) as srv:
            assert srv.port != taken and srv.requested_port == taken
            assert said and str(taken) in said[0] and str(srv.port) in said[0]
            assert get_json(srv, "/api/experiments")["experiments"]
    finally:
        blocker.close()


def test_stop_frees_the_port_and_is_idempotent(exp_root):
    srv = start_logview(exp_root, port=0)
    port = srv.port
    srv.stop()
    srv.stop()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_only_loopback_hosts(exp_root):
    with pytest.raises(ValueError, match="loopback"):
        start_logview(exp_root, host="0.0.0.0", port=0)


def test_logview_for_run_prints_the_experiment_url_and_stops(exp_root):
    said = []
    with logview_for_run(exp_root / "run1", port=0, say=said.append) as srv:
        assert get_json(srv, "/api/experiments")["experiments"][0]["name"] == "run1"
    assert said == [f"astuner: logview at {srv.url}#/exp/run1"]
    with pytest.raises(OSError):
        urllib.request.urlopen(srv.url, timeout=2)


def test_module_main_rejects_a_missing_dir(tmp_path, capsys):
    assert logview_main(["--exp-dir", str(tmp_path / "nope")]) == 2
    assert "not a directory" in capsys.readouterr().err


def test_spawned_viewer_is_registered_and_killed_by_keyword(exp_root, tmp_path, monkeypatch):
    monkeypatch.setenv("ASTUNER_PROCS_DIR", str(tmp_path / "procs"))
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    proc, url = spawn_logview(exp_root, port=0)
    try:
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(url + "api/experiments", timeout=10) as resp:
            assert json.load(resp)["experiments"][0]["name"] == "run1"
        records = [json.loads(p.read_text()) for p in (tmp_path / "procs").glob("*.json")]
        assert [(r["pid"], r["tag"]) for r in records] == [(proc.pid, "logview")]
        assert kill_registered("logview") == [proc.pid]
        assert proc.wait(timeout=10) is not None
    finally:
        if proc.poll() is None:
            proc.kill()


def test_module_entry_point_serves_until_terminated(exp_root):
    proc = subprocess.Popen([sys.executable, "-m", "astuner.logview", "--exp-dir", str(exp_root), "--port", "0"],
                            cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert "logview serving" in line
        url = line.rsplit(" at ", 1)[1].split()[0]
        deadline = time.monotonic() + 10
        while True:
            try:
                urllib.request.urlopen(url, timeout=2).read()
                break
            except OSError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        proc.terminate()
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
