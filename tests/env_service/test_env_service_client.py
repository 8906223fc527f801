"""The env_service client and env handle against real HTTP servers on localhost.

The example quiz service runs in a thread; failure modes (5xx, 4xx, non-JSON, slow answers)
come from a tiny scripted handler, so the retry rules are checked on the wire, not with mocks.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from astuner.env_service import EnvClient, EnvServiceError, EnvServiceGymEnv, RetryPolicy
from tutorial.example_env_agent.quiz import QuizGame, answer_in, questions, task_ids
from tutorial.example_env_agent.quiz_server import serve_in_thread

pytestmark = pytest.mark.integration

FAST = RetryPolicy(timeout_s=2.0, max_retries=2, backoff_s=0.01)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def scripted_service(answers: dict[str, list]):
    """A server whose endpoint E answers ``answers[E]`` in turn: ``(status, body)``, ``("sleep", s, body)``
    or ``("raw", status, bytes)``; the last answer repeats. Yields (url, hits per endpoint)."""
    hits: dict[str, int] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            endpoint = self.path.strip("/")
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            n = hits.get(endpoint, 0)
            hits[endpoint] = n + 1
            script = answers[endpoint]
            answer = script[min(n, len(script) - 1)]
            if answer[0] == "sleep":
                time.sleep(answer[1])
                answer = (200, answer[2])
            data = answer[2] if answer[0] == "raw" else json.dumps(answer[1]).encode()
            status = answer[1] if answer[0] == "raw" else answer[0]
            try:
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", hits
    finally:
        server.shutdown()
        server.server_close()


def test_quiz_rules():
    assert task_ids("dev") == ["dev-0", "dev-1", "dev-2", "dev-3"]
    assert questions("dev-2") == [("7 * 6 + 1", 43), ("81 - 27", 54)]
    assert answer_in("3 apples, then 4.5") == 4.5 and answer_in("none") is None
    game = QuizGame("dev-2")
    assert "what is 7 * 6 + 1?" in game.first_messages()[0]["content"]
    assert game.step("It is 43") == ("Correct.\nQuestion 2 of 2: what is 81 - 27?", False)
    observation, done = game.step("56")
    assert done and "81 - 27 = 54, not 56" in observation and "1 of 2 correct" in observation
    assert game.score() == 0.5 and game.score(sparse=True) == 0.0
    assert game.step("54") == ("The quiz is already over.", True)


def test_protocol_round_trip_with_the_example_service():
    with serve_in_thread() as url:
        client = EnvClient(url, FAST)
        assert client.get_env_profile("arith_quiz", "dev") == task_ids("dev")
        env = EnvServiceGymEnv(client, "arith_quiz", "dev-0", "inst-1")
        messages = env.create()
        assert messages == [{"role": "user", "content": QuizGame("dev-0").first_messages()[0]["content"]}]
        assert client.call("instances", {})["data"] == {"inst-1": "dev-0"}
        assert env.step("42") == ("Correct.\nQuestion 2 of 2: what is 9 * 8?", 0.0, False, False, {})
        observation, reward, terminated, truncated, info = env.step({"role": "assistant", "content": [{"type": "text", "text": "72"}]})
        assert terminated and not truncated and "2 of 2 correct" in observation and env.steps == 2
        assert env.evaluate(params={"sparse": False}) == 1.0
        assert env.evaluate("inst-1", params={"sparse": True}) == 1.0
        with pytest.raises(ValueError, match="not other"):
            env.evaluate("other")
        assert env.release() is True and env.release() is True
        assert client.call("instances", {})["data"] == {}
        with pytest.raises(EnvServiceError, match="already released"):
            env.step("1")
        assert client.release_instance("never-created") is False
        assert client.stats["failures"] == 0


def test_service_errors_are_not_retried_and_name_url_and_operation():
    with serve_in_thread() as url:
        client = EnvClient(url, FAST)
        with pytest.raises(EnvServiceError) as err:
            client.get_env_profile("appworld", "train")
        assert f"env service {url}: get_env_profile failed: HTTP 400" in str(err.value)
        assert "this service hosts 'arith_quiz'" in str(err.value)
        with pytest.raises(EnvServiceError, match=r"step \(instance nope\) failed: HTTP 404"):
            client.step("nope", {"role": "assistant", "content": "1"})
        assert client.stats == {"requests": 2, "retries": 0, "failures": 2}


def test_dead_service_is_retried_with_backoff_then_reported():
    url = f"http://127.0.0.1:{free_port()}"
    sleeps: list[float] = []
    client = EnvClient(url, RetryPolicy(timeout_s=1.0, max_retries=3, backoff_s=0.5), sleep=sleeps.append)
    with pytest.raises(EnvServiceError) as err:
        client.create_instance("arith_quiz", "dev-0", "i1")
    message = str(err.value)
    assert message.startswith(f"env service {url}: create (instance i1) failed after 4 attempts: cannot connect")
    assert "connection refused" in message
    assert err.value.maybe_delivered is False and err.value.operation == "create"
    assert sleeps == [0.5, 1.0, 2.0]
    assert client.stats == {"requests": 4, "retries": 3, "failures": 1}


def test_5xx_is_retried_only_where_repeating_is_safe():
    ok = (200, {"data": 0.5})
    with scripted_service({"evaluate": [(503, {"error": "busy"}), ok], "step": [(503, {"error": "busy"})]}) as (url, hits):
        client = EnvClient(url, FAST)
        assert client.evaluate("i1") == 0.5
        assert hits["evaluate"] == 2 and client.stats["retries"] == 1
        with pytest.raises(EnvServiceError) as err:
            client.step("i1", {"role": "assistant", "content": "x"})
        assert hits["step"] == 1
        assert "HTTP 503" in str(err.value) and "not retried: the service may have applied the step" in str(err.value)


def test_malformed_answers_are_clear_errors():
    answers = {
        "get_env_profile": [("raw", 200, b"<html>oops</html>")],
        "create": [(200, {"data": {"info": {}}})],
        "step": [(200, {"data": {"state": {"role": "user", "content": "x"}}})],
        "evaluate": [(200, {"success": False, "error": "no such instance"})],
        "release": [(200, {"success": False})],
    }
    with scripted_service(answers) as (url, hits):
        client = EnvClient(url, FAST)
        with pytest.raises(EnvServiceError, match="response is not JSON: <html>oops</html>"):
            client.get_env_profile("e", "train")
        with pytest.raises(EnvServiceError, match="has no 'state'"):
            client.create_instance("e", "t", "i1")
        with pytest.raises(EnvServiceError, match="needs 'state' and 'is_terminated'"):
            client.step("i1", {})
        with pytest.raises(EnvServiceError, match="success=false: no such instance"):
            client.evaluate("i1")
        assert client.release_instance("i1") is False
        assert all(n == 1 for n in hits.values())


def test_slow_service_times_out_quickly():
    slow = ("sleep", 3.0, {"data": {"state": {"content": "late"}, "is_terminated": False}})
    with scripted_service({"step": [slow], "evaluate": [("sleep", 3.0, {"data": 1.0})]}) as (url, hits):
        client = EnvClient(url, RetryPolicy(timeout_s=0.3, max_retries=1, backoff_s=0.01))
        start = time.monotonic()
        with pytest.raises(EnvServiceError, match=r"step \(instance i1\) failed: no response within 0.3 s; not retried"):
            client.step("i1", {"role": "assistant", "content": "1"})
        with pytest.raises(EnvServiceError, match="evaluate .* failed after 2 attempts: no response within 0.3 s"):
            client.evaluate("i1")
        assert time.monotonic() - start < 2.5
        assert hits == {"step": 1, "evaluate": 2}


def test_a_failed_request_breaks_the_handle():
    answers = {"create": [(200, {"data": {"state": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]}})],
               "step": [(500, {"error": "boom"})], "evaluate": [(200, {"data": 1})]}
    with scripted_service(answers) as (url, hits):
        env = EnvServiceGymEnv(EnvClient(url, FAST), "e", "t", "i1")
        assert [m["role"] for m in env.create()] == ["system", "user"]
        with pytest.raises(EnvServiceError, match="HTTP 500"):
            env.step("1")
        with pytest.raises(EnvServiceError, match="not sent: the instance is unusable since its step failed"):
            env.evaluate()
        assert "evaluate" not in hits and env.error.operation == "step"
        assert env.metrics()["error"].startswith(f"env service {url}: step")


def test_observations_from_odd_states():
    states = [
        {"data": {"state": {"role": "user", "error": "bad action"}, "is_terminated": False}},
        {"data": {"state": {"role": "user", "content": ""}, "is_terminated": True, "reward": 0.5, "info": {"k": 1}}},
        {"data": {"state": [{"role": "tool", "content": "a"}, {"role": "user", "content": "b"}], "is_terminated": 0}},
        {"data": {"state": "plain text", "is_terminated": False}},
    ]
    with scripted_service({"step": [(200, s) for s in states]}) as (url, _):
        env = EnvServiceGymEnv(EnvClient(url, FAST), "e", "t", "i1")
        assert env.step("x") == ("[Error from environment: bad action]", 0.0, False, False, {})
        assert env.step("x") == ("[The environment returned no observation text.]", 0.5, True, False, {"k": 1})
        assert env.step("x") == ("a\n\nb", 0.0, False, False, {})
        with pytest.raises(EnvServiceError, match="'state' is str, expected a message or a list of messages"):
            env.step("x")
    with pytest.raises(TypeError, match="env action must be text"):
        env.step(42)
    with pytest.raises(ValueError, match="must start with http"):
        EnvClient("127.0.0.1:8080")


# --- gymnasium's 5-tuple, with services and clients of either form (astuner/env_service/step_api.py) ---


def test_a_service_without_is_truncated_is_read_the_old_way():
    """An older service: no ``is_truncated``; gym's ``info["TimeLimit.truncated"]`` marks a cut-off episode."""
    old_form = [
        {"data": {"state": {"content": "go on"}, "is_terminated": False}},
        {"data": {"state": {"content": "time is up"}, "is_terminated": True, "info": {"TimeLimit.truncated": True}}},
        {"data": {"state": {"content": "solved"}, "is_terminated": True, "info": {}}},
    ]
    with scripted_service({"step": [(200, s) for s in old_form]}) as (url, _):
        env = EnvServiceGymEnv(EnvClient(url, FAST), "e", "t", "i1")
        assert env.step("a") == ("go on", 0.0, False, False, {})
        obs, _, terminated, truncated, info = env.step("b")
        assert (terminated, truncated, env.truncated) == (False, True, True) and info == {"TimeLimit.truncated": True}
        step = env.step("c")
        assert (step.terminated, step.truncated, step.done) == (True, False, True)
        assert env.metrics()["terminated"] and not env.metrics()["truncated"]


def test_a_service_with_is_truncated_is_read_as_gymnasium():
    new_form = [
        {"data": {"state": {"content": "limit"}, "is_terminated": True, "is_truncated": True}},
        {"data": {"state": {"content": "limit, gymnasium keys"}, "is_terminated": False, "is_truncated": True}},
        {"data": {"state": {"content": "end"}, "is_terminated": True, "is_truncated": False,
                  "info": {"TimeLimit.truncated": True}}},  # is_truncated wins over the old info flag
    ]
    with scripted_service({"step": [(200, s) for s in new_form]}) as (url, _):
        env = EnvServiceGymEnv(EnvClient(url, FAST), "e", "t", "i1")
        assert env.step("a")[2:4] == (False, True)
        assert env.step("b")[2:4] == (False, True)
        assert env.step("c")[2:4] == (True, False)


def test_example_service_truncates_and_old_clients_still_see_the_end():
    with serve_in_thread(max_steps=1) as url:
        client = EnvClient(url, FAST)
        env = EnvServiceGymEnv(client, "arith_quiz", "dev-0", "inst-1")
        env.create()
        observation, _, terminated, truncated, _ = env.step("42")
        assert (terminated, truncated) == (False, True) and "step limit (1) reached" in observation
        again = env.step("72")
        assert (again.terminated, again.truncated) == (False, True) and "step limit reached" in again.observation
        assert env.evaluate(params={"sparse": False}) == 0.5  # the second question was never answered
        raw = client.step("inst-1", {"role": "assistant", "content": "72"})
        assert raw["is_terminated"] is True  # what a client that predates is_truncated reads: the episode is over
        env.release()


def test_legacy_step_gives_gyms_four_tuple():
    with serve_in_thread(max_steps=1) as url:
        env = EnvServiceGymEnv(EnvClient(url, FAST), "arith_quiz", "dev-0", "inst-1")
        env.create()
        observation, reward, done, info = env.legacy_step("42")
        assert done and reward == 0.0 and info == {"TimeLimit.truncated": True} and "Correct." in observation
    with serve_in_thread() as url:
        env = EnvServiceGymEnv(EnvClient(url, FAST), "arith_quiz", "dev-0", "inst-2")
        env.create()
        assert env.legacy_step("42") == ("Correct.\nQuestion 2 of 2: what is 9 * 8?", 0.0, False, {})
        assert asyncio.run(env.alegacy_step("72"))[2:] == (True, {})
