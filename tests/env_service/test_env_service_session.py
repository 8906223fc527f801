"""Reader, judge and the per-rollout session against the example quiz service (in a thread)."""

from __future__ import annotations

import asyncio
import socket

import pytest

from astuner.config.schema import Config, TaskReaderConfig
from astuner.env_service import EnvServiceError, env_for_rollout
from astuner.schema import Task, WorkflowOutput, WorkflowTask
from astuner.task_judge.base_judge import JudgeInputError
from astuner.task_judge.env_service_as_judge import EnvServiceJudge, env_reward
from astuner.task_reader import TaskReaderError, build_task_reader
from tutorial.example_env_agent.quiz_server import serve_in_thread


def reader_data(url: str, **extra) -> dict:
    """The ``task_reader`` block as a config file holds it."""
    block = {"env_url": url, "env_type": "arith_quiz", "training_split": "train", "validation_split": "dev",
             "timeout_s": 2.0, "max_retries": 1, "retry_backoff_s": 0.01, **extra}
    return {"type": "env_service", "env_service": block}


def reader_cfg(url: str, **extra) -> TaskReaderConfig:
    return TaskReaderConfig.model_validate(reader_data(url, **extra))


def config_for(url: str, **extra) -> Config:
    return Config.model_validate({"astuner": {"task_reader": reader_data(url, **extra)}})


def closed_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def live(url: str) -> dict:
    from astuner.env_service import EnvClient

    return EnvClient(url).call("instances", {})["data"]


def workflow_task(task_id: str = "dev-0") -> WorkflowTask:
    return WorkflowTask(task=Task(task_id=task_id, main_query="[not defined]", env_type="arith_quiz"))


def test_reader_lists_the_service_tasks():
    with serve_in_thread() as url:
        reader = build_task_reader(reader_cfg(url), shuffle=False)
        dev = reader.get_validation_tasks()
        assert [t.task_id for t in dev] == ["dev-0", "dev-1", "dev-2", "dev-3"]
        assert all(t.main_query == "[not defined]" and t.env_type == "arith_quiz" for t in dev)
        assert all(t.init_messages == [] and t.metadata == {} for t in dev)
        assert len(reader.get_training_tasks()) == 8
        assert build_task_reader(reader_cfg(url, validation_split="")).get_validation_tasks() == []
        with pytest.raises(TaskReaderError, match=f"env service {url}: get_env_profile failed: HTTP 400.*no split 'test'"):
            build_task_reader(reader_cfg(url, validation_split="test")).get_validation_tasks()


def test_reader_errors_name_the_service():
    url = closed_url()
    with pytest.raises(TaskReaderError) as err:
        build_task_reader(reader_cfg(url)).get_training_tasks()
    assert f"cannot read tasks: env service {url}: get_env_profile failed after 2 attempts" in str(err.value)
    with pytest.raises(TaskReaderError, match="env_url: env_url must start with http"):
        build_task_reader(reader_cfg("localhost:1"))


def test_reader_accepts_task_records(monkeypatch):
    from astuner.env_service import EnvClient
    from astuner.task_reader.env_service import EnvServiceTaskReader

    client = EnvClient("http://127.0.0.1:1")
    entries = [7, {"task_id": "b", "main_query": "Book a flight", "metadata": {"level": 2}}]
    monkeypatch.setattr(client, "get_env_profile", lambda env_type, split: entries)
    first, second = EnvServiceTaskReader(client, "appworld").get_training_tasks()
    assert (first.task_id, first.main_query) == ("7", "[not defined]")
    assert (second.task_id, second.main_query, second.metadata) == ("b", "Book a flight", {"level": 2})
    for bad, message in (([], "lists no tasks"), (["a", "a"], "lists task 'a' twice"), ([None], "entry 0 is None")):
        monkeypatch.setattr(client, "get_env_profile", lambda env_type, split, bad=bad: bad)
        with pytest.raises(TaskReaderError, match=message):
            EnvServiceTaskReader(client, "appworld").get_training_tasks()


def test_env_reward_rule():
    assert env_reward(1.0) == (1.5, True)
    assert env_reward(0.5) == (0.25, False)
    assert env_reward(0.0) == (0.0, False)
    assert env_reward(2.0) == (2.0, True)


def test_session_holds_and_releases_the_instance_and_the_judge_scores_it():
    with serve_in_thread() as url:
        config, wt, metrics = config_for(url), workflow_task("dev-2"), {}

        async def rollout():
            async with env_for_rollout(config.astuner.task_reader, wt, metrics) as env:
                assert wt.gym_env is env and live(url) == {wt.task_env_uuid: "dev-2"}
                assert "what is 7 * 6 + 1?" in wt.task.init_messages[0]["content"]
                assert wt.init_messages == wt.task.init_messages
                await env.astep("43")
                env.step("0")
                judge = EnvServiceJudge(config)
                seed_style = judge.compute_reward({"workflow_task": wt, "env": env})
                new_style = judge.compute_reward(wt, WorkflowOutput())
                return seed_style, new_style

        assert asyncio.run(rollout()) == ((0.25, False), (0.25, False))
        assert live(url) == {}
        assert metrics["released"] and not metrics["unreleased"] and metrics["steps"] == 2
        assert metrics["error"] is None and metrics["http_failures"] == 0


def test_instance_is_released_when_the_workflow_fails_or_is_cancelled():
    with serve_in_thread() as url:
        config = config_for(url)

        async def failing():
            async with env_for_rollout(config.astuner.task_reader, workflow_task(), {}):
                raise RuntimeError("workflow bug")

        with pytest.raises(RuntimeError, match="workflow bug"):
            asyncio.run(failing())
        assert live(url) == {}

        async def cancelled():
            started = asyncio.Event()

            async def body():
                async with env_for_rollout(config.astuner.task_reader, workflow_task(), {}):
                    started.set()
                    await asyncio.sleep(60)

            task = asyncio.create_task(body())
            await started.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        asyncio.run(cancelled())
        assert live(url) == {}


def test_a_swallowed_env_error_still_fails_the_rollout():
    with serve_in_thread() as url:
        wt, metrics = workflow_task(), {}

        async def rollout():
            async with env_for_rollout(reader_cfg(url), wt, metrics) as env:
                env.client.base_url = closed_url()  # the service "goes away" for this instance's steps
                try:
                    env.step("42")
                except EnvServiceError:
                    pass  # what an agent framework does with a tool's exception
                env.client.base_url = url

        with pytest.raises(EnvServiceError, match=r"step \(instance .*\) failed after 2 attempts: cannot connect"):
            asyncio.run(rollout())
        assert live(url) == {} and metrics["released"] and metrics["error"]


def test_dead_service_fails_create_without_a_release_attempt():
    url, metrics = closed_url(), {}

    async def rollout():
        async with env_for_rollout(reader_cfg(url), workflow_task(), metrics):
            raise AssertionError("the body must not run")

    with pytest.raises(EnvServiceError, match=f"env service {url}: create .* failed after 2 attempts"):
        asyncio.run(rollout())
    assert metrics["created"] is False and metrics["unreleased"] is False
    assert metrics["http_requests"] == 2  # two create attempts, no release


def test_release_failure_fails_an_otherwise_good_rollout():
    with serve_in_thread() as url:
        metrics = {}

        async def rollout():
            async with env_for_rollout(reader_cfg(url), workflow_task(), metrics) as env:
                env.step("42")
                env.client.base_url = closed_url()

        with pytest.raises(EnvServiceError, match="release .* failed after 2 attempts"):
            asyncio.run(rollout())
        assert metrics["unreleased"] is True and "release" in metrics["release_error"]
        assert len(live(url)) == 1


def test_session_is_a_no_op_for_other_readers():
    config, wt, metrics = Config(), workflow_task(), {}

    async def rollout():
        async with env_for_rollout(config.astuner.task_reader, wt, metrics) as env:
            return env

    assert asyncio.run(rollout()) is None and wt.gym_env is None and metrics == {}
    with pytest.raises(JudgeInputError, match="use it with task_reader.type: env_service"):
        EnvServiceJudge(config).compute_reward(wt, WorkflowOutput())
