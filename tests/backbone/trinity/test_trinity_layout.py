"""The trinity backbone's GPU layout (``astuner/backbone/trinity/layout.py``) and NVLink multicast off.

The rule and the refusals are plain data (unit tier). The ``integration`` tests write the translated
config and run the real trinity-rft 0.6.0 ``load_config`` + ``check_and_update`` on it for 1, 2, 4
and 8 GPUs — on CPU: ``cluster.node_num``/``gpu_per_node`` are always set, so Trinity counts GPUs
from the config and never asks Ray. Nothing here starts vLLM, a trainer or Ray.
"""

from __future__ import annotations

import pytest

from astuner.backbone.trinity.config import TranslationError, check_with_trinity, write_trinity_config
from astuner.backbone.trinity.layout import default_engine_num
from astuner.config import load_config
from tests.backbone.trinity.fixtures import gpu_overrides, require_trinity, translate_offline, write_offline_yaml
from tests.conftest import REPO


@pytest.mark.parametrize(
    ("total", "per_node", "per_engine", "engines"),
    [(2, 2, 1, 1), (3, 3, 1, 1), (4, 4, 1, 2), (8, 8, 1, 4), (8, 8, 2, 2), (8, 8, 4, 1), (16, 8, 1, 8), (24, 8, 1, 8)],
)
def test_default_rule_gives_half_the_gpus_to_engines_and_whole_nodes_to_a_big_trainer(total, per_node, per_engine,
                                                                                      engines):
    assert default_engine_num(total, per_node, per_engine) == engines


def test_one_gpu_translates_to_colocate(tmp_path):
    t, _ = translate_offline(tmp_path, *gpu_overrides(1))
    d = t.data
    assert d["mode"] == "colocate" and d["cluster"] == {"node_num": 1, "gpu_per_node": 1}
    rollout = d["explorer"]["rollout_model"]
    assert (rollout["engine_num"], rollout["tensor_parallel_size"], rollout["gpu_memory_utilization"]) == (1, 1, 0.25)
    assert d["synchronizer"]["sync_method"] == "memory"
    assert t.layout.trainer_gpus == 1  # any batch divides one trainer GPU: no batch note
    assert not any("train_batch_size" in n for n in t.notes)
    assert "colocate" in t.layout.describe()


@pytest.mark.parametrize(("gpus", "engines"), [(2, 1), (4, 2), (8, 4)])
def test_several_gpus_split_half_and_half_with_nccl_sync(tmp_path, gpus, engines):
    t, _ = translate_offline(tmp_path, *gpu_overrides(gpus))
    d = t.data
    assert d["mode"] == "both" and d["synchronizer"]["sync_method"] == "nccl"
    assert d["explorer"]["rollout_model"]["engine_num"] == engines
    assert "gpu_memory_utilization" not in d["explorer"]["rollout_model"]
    assert t.layout.trainer_gpus == gpus - engines


def test_user_values_win_over_the_rule(tmp_path):
    t, _ = translate_offline(tmp_path, *gpu_overrides(8), "astuner.rollout.n_vllm_engine=3")
    assert t.data["explorer"]["rollout_model"]["engine_num"] == 3 and t.layout.trainer_gpus == 5
    assert not t.layout.engines_chosen
    # 2 tasks x 3 runs = 6 samples, raised to the next multiple of the 5 trainer GPUs
    assert t.data["buffer"]["train_batch_size"] == 10
    t, _ = translate_offline(tmp_path, *gpu_overrides(8), "astuner.rollout.tensor_model_parallel_size=2")
    assert t.data["explorer"]["rollout_model"]["engine_num"] == 2 and t.layout.trainer_gpus == 4  # 4 GPUs / TP 2
    block = "  explorer: {rollout_model: {engine_num: 6, tensor_parallel_size: 1}}"
    t, _ = translate_offline(tmp_path, *gpu_overrides(8), "astuner.rollout.tensor_model_parallel_size=2", trinity=block)
    assert t.data["explorer"]["rollout_model"]["engine_num"] == 6 and t.layout.trainer_gpus == 2


@pytest.mark.parametrize(
    ("overrides", "trinity", "key", "words"),
    [
        (gpu_overrides(2), "  mode: colocate", "trinity.mode", "colocate needs exactly 1 GPU"),
        (gpu_overrides(1), "  mode: both", "trinity.mode", "leave mode unset (astuner uses colocate"),
        ((*gpu_overrides(1), "astuner.rollout.tensor_model_parallel_size=2"), "",
         "astuner.rollout.tensor_model_parallel_size", "colocate runs the engine on the one GPU"),
        ((*gpu_overrides(1), "astuner.rollout.n_vllm_engine=2"), "", "astuner.rollout.n_vllm_engine",
         "colocate runs exactly 1 vLLM engine"),
        ((*gpu_overrides(1), "astuner.trainer_common.ulysses_sequence_parallel_size=2"), "",
         "astuner.trainer_common.ulysses_sequence_parallel_size", "colocate needs 1"),
        ((*gpu_overrides(8), "astuner.rollout.n_vllm_engine=8"), "", "astuner.rollout.n_vllm_engine",
         "leave none of the 8 GPUs (astuner.trainer_common.nnodes x astuner.trainer_common.n_gpus_per_node) for the "
         "trainer; use at most 7 engine(s)"),
        ((*gpu_overrides(4), "astuner.rollout.tensor_model_parallel_size=4"), "",
         "astuner.rollout.tensor_model_parallel_size", "give each engine fewer than 4 GPUs"),
        ((*gpu_overrides(8, nodes=2), "astuner.rollout.n_vllm_engine=3"), "", "astuner.rollout.n_vllm_engine",
         "not whole nodes of 8"),
        ((*gpu_overrides(2, nodes=4), "astuner.rollout.tensor_model_parallel_size=3"), "",
         "astuner.rollout.tensor_model_parallel_size", "fit in one node (2 GPUs) or span whole nodes"),
        ((*gpu_overrides(8), "astuner.trainer_common.ulysses_sequence_parallel_size=3"), "",
         "astuner.trainer_common.ulysses_sequence_parallel_size", "not divisible by the sequence-parallel size 3"),
        (gpu_overrides(8), "  explorer: {rollout_model: {engine_num: 0}}", "trinity.explorer.rollout_model.engine_num",
         "must be a whole number >= 1"),
    ],
)
def test_layouts_that_cannot_work_are_one_line_naming_the_key(tmp_path, overrides, trinity, key, words):
    with pytest.raises(TranslationError) as info:
        translate_offline(tmp_path, *overrides, trinity=trinity)
    text = str(info.value)
    assert text.startswith(f"{key}: ") and words in text and "\n" not in text, text


@pytest.mark.integration
def test_the_cli_exits_2_with_the_layout_error(tmp_path, capsys):
    from astuner.cli import main

    require_trinity()
    conf = write_offline_yaml(tmp_path, trinity="  mode: colocate")
    code = main(["--conf", str(conf), "--backbone=trinity", "--exp-dir", str(tmp_path / "exp"), "--skip-gpu-check"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith(f"astuner: error: {conf.name}: trinity.mode: colocate needs exactly 1 GPU"), err


@pytest.mark.integration
@pytest.mark.parametrize(("gpus", "mode", "engines", "trainer"), [(1, "colocate", 1, 1), (2, "both", 1, 1),
                                                                  (4, "both", 2, 2), (8, "both", 4, 4)])
def test_trinity_check_and_update_accepts_the_layout(tmp_path, gpus, mode, engines, trainer):
    require_trinity()
    t, exp_dir = translate_offline(tmp_path, *gpu_overrides(gpus))
    checked = check_with_trinity(write_trinity_config(t.data, exp_dir))
    cluster = checked.cluster
    assert checked.mode == mode and cluster.total_gpu_num == gpus
    assert checked.explorer.rollout_model.engine_num == engines
    assert (cluster.explorer_gpu_num, cluster.trainer_gpu_num) == (1 if mode == "colocate" else engines, trainer)
    if mode == "colocate":
        assert checked.synchronizer.sync_method.value == "memory"
        assert checked.explorer.rollout_model.gpu_memory_utilization == 0.25
    else:
        assert checked.synchronizer.sync_method.value == "nccl"
        assert checked.synchronizer.explorer_world_size == engines  # the NCCL group's engine side
    assert checked.buffer.train_batch_size % trainer == 0


@pytest.mark.integration
def test_trinity_accepts_tensor_parallel_engines_on_8gpu_overrides(tmp_path):
    require_trinity()
    t, exp_dir = translate_offline(tmp_path, *gpu_overrides(8), "astuner.rollout.tensor_model_parallel_size=2")
    checked = check_with_trinity(write_trinity_config(t.data, exp_dir))
    assert checked.explorer.rollout_model.engine_num == 2 and checked.explorer.rollout_model.gpu_per_engine == 2
    assert (checked.cluster.explorer_gpu_num, checked.cluster.trainer_gpu_num) == (4, 4)


@pytest.mark.integration
def test_trinity_itself_refuses_both_mode_on_one_gpu(tmp_path):
    """Why one GPU must be colocate: the old translation (always ``mode: both``) fails Trinity's check."""
    require_trinity()
    t, exp_dir = translate_offline(tmp_path, *gpu_overrides(1))
    t.data["mode"] = "both"
    with pytest.raises(TranslationError, match="Not enough GPUs for trainer"):
        check_with_trinity(write_trinity_config(t.data, exp_dir))


def test_multicast_stays_off_unless_the_user_set_it(monkeypatch, tmp_path):
    from astuner.backbone.trinity.launch import actor_env
    from astuner.ray_service import MULTICAST_OFF, multicast_off_env

    for key in MULTICAST_OFF:
        monkeypatch.delenv(key, raising=False)
    assert multicast_off_env() == {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1",
                                   "NVSHMEM_DISABLE_NVLS": "1"}
    monkeypatch.setenv("NCCL_NVLS_ENABLE", "1")
    env = actor_env(tmp_path)
    assert env["NCCL_NVLS_ENABLE"] == "1" and env["TORCH_SYMM_MEM_DISABLE_MULTICAST"] == "1"


def test_ray_nodes_astuner_starts_get_multicast_off(monkeypatch, tmp_path):
    from astuner import ray_service

    started = []

    class FakeProc:
        pid = 12345

    def spawn(command, tag, **kw):
        started.append(kw["env"])
        return FakeProc()

    monkeypatch.setenv("ASTUNER_PROCS_DIR", str(tmp_path / "procs"))
    monkeypatch.delenv("NCCL_NVLS_ENABLE", raising=False)
    monkeypatch.setenv("NVSHMEM_DISABLE_NVLS", "0")
    monkeypatch.setattr(ray_service.procs, "spawn", spawn)
    monkeypatch.setattr(ray_service.procs, "find", lambda **kw: [])
    monkeypatch.setattr(ray_service, "_port_open", lambda *a, **kw: False)
    monkeypatch.setattr(ray_service, "_require_cli", lambda: "ray")
    monkeypatch.setattr(ray_service, "_wait_ready", lambda *a, **kw: None)
    ray_service._ensure_head("127.0.0.1", 1, [], 1.0)
    (env,) = started
    assert env["NCCL_NVLS_ENABLE"] == "0" and env["NVSHMEM_DISABLE_NVLS"] == "0"  # the user's value is kept
    assert env["PATH"] == ray_service.os.environ["PATH"]


def test_auto_gpus_per_node_counts_the_visiblegpu_overrides(monkeypatch):
    """The default ``n_gpus_per_node: auto`` takes the GPUs CUDA sees: one is colocate, two split; none is an error."""
    from astuner.backbone.trinity import layout
    from astuner.config import load_config

    config = load_config(REPO / "tutorial/example_math_agent/math_agent.yaml", backbone="trinity")
    assert config.astuner.trainer_common.n_gpus_per_node == "auto"
    monkeypatch.setattr("torch.cuda.device_count", lambda: 1)
    one = layout.plan_layout(config)
    assert (one.mode, one.gpu_per_node, one.engine_num) == ("colocate", 1, 1)
    monkeypatch.setattr("torch.cuda.device_count", lambda: 2)
    two = layout.plan_layout(config)
    assert (two.mode, two.gpu_per_node, two.engine_num) == ("both", 2, 1)
    monkeypatch.setattr("torch.cuda.device_count", lambda: 0)
    with pytest.raises(layout.LayoutError, match="'auto' found no CUDA GPU"):
        layout.plan_layout(config)
