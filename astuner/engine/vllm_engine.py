"""The ``vllm`` engine: token-exact completions from a ``vllm serve`` that this engine starts and stops.

Generation goes through ``OpenAIEngine`` (prompt token ids in, ``choices[0].token_ids`` and
``logprobs.token_logprobs`` out), so samples are exactly as token-exact as with a server you run
yourself; the difference is ownership: the server lives as long as the engine (``close`` stops it,
and ``astuner.engine.server_guard`` stops it if the process ends first).

Weights after a policy update (local backbone) reach the server one of two ways, ``weight_sync``:

- ``reload`` (default): the server runs with ``--enable-sleep-mode`` and vLLM's development routes
  (``VLLM_SERVER_DEV_MODE=1``). ``pause`` puts it to sleep (level 1: weights offloaded to CPU, KV cache
  freed) so the trainer has the GPU's memory; ``load_weights`` saves the model as a Hugging Face
  directory under ``<experiment dir>/vllm_weights/``, wakes the server, has every worker reload its
  weights from that directory in place (``/collective_rpc`` ``reload_weights``), and resets the prefix
  cache (cached KV of the old weights must not be reused). No process restart, no re-profiling, no
  CUDA-graph capture.
- ``restart``: the route that needs nothing beyond ``vllm serve``'s command line: ``pause`` stops the
  server, ``load_weights`` starts a new one on the saved directory (a full vLLM start-up per update).

Either way the served name stays the same, the directory replaced is deleted once the new weights
are served (``close`` deletes the last one), and ``last_sync_s`` holds the seconds the last
``load_weights`` took (saving included).

Not guaranteed: that the reported logprobs equal the trainer's recomputation when ``top_p < 1`` or
``top_k`` is set (vLLM's processed logprobs are renormalised over the kept tokens; the trainer
uses the full tempered distribution); bit-identical logits between vLLM and transformers.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from astuner.engine.base import Completion, EngineError, SamplingParams
from astuner.engine.openai_engine import OpenAIEngine
from astuner.engine.vllm_server import (
    LOG_NAME,
    ServeOptions,
    VllmServer,
    clamp_tensor_parallel,
    find_launcher,
    visible_gpu_count,
)

if TYPE_CHECKING:
    from astuner.config.schema_rollout import VllmEngineConfig

WEIGHTS_DIR = "vllm_weights"
WEIGHT_SYNCS = ("reload", "restart")
API_KEY_ENV = "ASTUNER_VLLM_API_KEY"
"""Read for the bearer token sent to our own server (started without ``--api-key``, so any value
works); a dedicated name keeps a real ``OPENAI_API_KEY`` from being sent to it."""


class VllmEngine:
    """An ``Engine`` backed by the ``VllmServer`` it owns."""

    def __init__(
        self,
        server: VllmServer,
        model_dir: str | Path,
        *,
        weights_root: Path,
        request_timeout_s: float = 600.0,
        weight_sync: str = "restart",
    ) -> None:
        if weight_sync not in WEIGHT_SYNCS:
            raise EngineError(f"vllm weight_sync must be one of {WEIGHT_SYNCS}, got {weight_sync!r}")
        if weight_sync == "reload" and not server.options.sleep_mode:
            raise EngineError("vllm weight_sync 'reload' needs a server started with sleep_mode")
        self.server = server
        self.model_dir: str | Path = model_dir
        self.weights_root = Path(weights_root)
        self.request_timeout_s = request_timeout_s
        self.weight_sync = weight_sync
        self.last_sync_s = 0.0
        self._client: OpenAIEngine | None = None
        self._asleep = False

    @property
    def base_url(self) -> str:
        return self.server.base_url

    def start(self) -> VllmEngine:
        """Start the server on ``model_dir`` (blocks until it answers)."""
        self.server.start(self.model_dir)
        self._asleep = False
        self._connect()
        return self

    def _connect(self) -> None:
        self._client = OpenAIEngine(
            self.server.base_url, self.server.options.served_model_name, api_key_env=API_KEY_ENV,
            timeout_s=self.request_timeout_s,
        )

    async def generate(self, prompt_ids: list[int], params: SamplingParams, *, context: dict | None = None) -> Completion:
        if self._client is None:
            raise EngineError("the vLLM server is not running (closed, or paused for a weight update)")
        return await self._client.generate(prompt_ids, params, context=context)

    def pause(self) -> None:
        """Free the server's GPU memory for a policy update: sleep (``reload``) or stop (``restart``)."""
        self._drop_client()
        if self.weight_sync == "reload" and self.server.proc is not None:
            if not self._asleep:
                self.server.post("/sleep", params={"level": "1"})
                self._asleep = True
        else:
            self.server.stop()

    @contextmanager
    def updating(self) -> Iterator[None]:
        """``PolicyEngine``: the server is paused (asleep or stopped) for the whole update."""
        self.pause()
        yield

    def publish(self, model: Any, tokenizer: Any, name: str) -> float:
        """``PolicyEngine``: frees the trainer's cached CUDA blocks, then ``load_weights``; its seconds."""
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        self.load_weights(model, tokenizer, name)
        return float(self.last_sync_s)

    def load_weights(self, model: Any, tokenizer: Any, name: str) -> Path:
        """Serve ``model``'s current weights: save them to ``weights_root/name``, then reload or restart.

        ``model`` and ``tokenizer`` are Hugging Face objects (``save_pretrained``). The directory
        is written under a temporary name and renamed when complete. The previous directory under
        ``weights_root`` is deleted once the new weights are served; the base model is never touched.
        """
        started = time.perf_counter()
        target = self.weights_root / name
        partial = target.with_name(target.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        model.save_pretrained(str(partial))
        tokenizer.save_pretrained(str(partial))
        shutil.rmtree(target, ignore_errors=True)
        partial.rename(target)
        previous, self.model_dir = self.model_dir, target
        if self.weight_sync == "reload" and self.server.proc is not None:
            self._drop_client()
            if self._asleep:
                self.server.post("/wake_up")
                self._asleep = False
            self.server.post("/collective_rpc", body={"method": "reload_weights", "kwargs": {"weights_path": str(target)}})
            self.server.post("/reset_prefix_cache")
            self._connect()
        else:
            self.pause()
            self.start()
        if Path(previous) != target and Path(previous).parent == self.weights_root:
            shutil.rmtree(previous, ignore_errors=True)
        self.last_sync_s = time.perf_counter() - started
        return target

    def close(self) -> None:
        """Stop the server and delete the weights saved for it (checkpoints keep their own copy). Idempotent."""
        self._drop_client()
        self.server.stop()
        if Path(self.model_dir).parent == self.weights_root:
            shutil.rmtree(self.model_dir, ignore_errors=True)
            if self.weights_root.is_dir() and not any(self.weights_root.iterdir()):
                self.weights_root.rmdir()

    def _drop_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()


def build_vllm_engine(
    section: VllmEngineConfig,
    model_path: str,
    *,
    seed: int,
    log_dir: str | Path | None,
    max_model_len: int | None,
    say: Callable[[str], None] | None = None,
) -> VllmEngine:
    """Start ``vllm serve model_path`` as the ``engine.vllm`` block says and return its engine.

    ``seed`` is the server's seed when the block leaves ``seed`` null. The log is
    ``log_dir/vllm_server.log`` (a new temporary directory when ``log_dir`` is empty). Raises
    ``VllmNotInstalled`` before starting anything when vLLM is missing, ``VllmStartError`` when
    the server does not come up.
    """
    say = say or (lambda msg: print(msg, flush=True))
    launcher = find_launcher(section.executable)
    requested = section.tensor_parallel_size
    tensor_parallel = clamp_tensor_parallel(requested, visible_gpu_count())
    if tensor_parallel != requested:
        say(f"astuner: vllm tensor_parallel_size {requested} -> {tensor_parallel} (visible GPUs)")
    options = ServeOptions(
        served_model_name=str(model_path),
        seed=seed if section.seed is None else section.seed,
        max_model_len=max_model_len,
        host=section.host,
        tensor_parallel_size=tensor_parallel,
        gpu_memory_utilization=section.gpu_memory_utilization,
        max_num_seqs=section.max_num_seqs,
        enforce_eager=section.enforce_eager,
        dtype=section.dtype,
        sleep_mode=section.weight_sync == "reload",
        extra_args=list(section.extra_args),
    )
    directory = Path(log_dir) if log_dir else Path(tempfile.mkdtemp(prefix="astuner-vllm-"))
    server = VllmServer(
        launcher,
        options,
        port=section.port,
        log_path=directory / LOG_NAME,
        startup_timeout_s=section.startup_timeout_s,
        say=say,
    )
    engine = VllmEngine(
        server,
        model_path,
        weights_root=directory / WEIGHTS_DIR,
        request_timeout_s=section.request_timeout_s,
        weight_sync=section.weight_sync,
    )
    return engine.start()
