"""Token-exact completions from an OpenAI-compatible server such as ``vllm serve``.

Chat endpoints re-render and re-tokenize messages on the server, which breaks token-exactness
(docs/architecture.md, contract 2). This engine therefore uses the plain ``/completions`` endpoint
with the prompt given as a list of token ids, and asks for vLLM's extras so the reply carries token
ids: ``return_token_ids`` (ids in ``choices[0].token_ids``) and ``return_tokens_as_token_ids``
(``logprobs.tokens`` entries of the form ``"token_id:<N>"``, the fallback when ``token_ids`` is
absent). Logprobs come from ``logprobs.token_logprobs``.

Not guaranteed:

- that the logprobs are the sampling distribution's. They are whatever the server reports;
  vLLM's V1 engine reports the raw model's (temperature 1) unless started with
  ``--logprobs-mode processed_logprobs``, which applies temperature and top-p/top-k. With
  temperature 1, top_p 1 and no top_k the two agree.
- that a stop token is in ``token_ids``. vLLM includes the stop token it stopped on, but if a
  server ends with finish ``"stop"`` without returning it, nothing is appended: the engine never
  invents tokens it did not receive.
- servers other than vLLM: one that ignores the extras and returns text-only tokens fails with
  ``EngineError`` rather than being re-tokenized.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import httpx

from astuner.engine.base import Completion, EngineError, SamplingParams

_TOKEN_PREFIX = "token_id:"


def _parse_token(entry: Any, url: str) -> int:
    if isinstance(entry, int):
        return entry
    if isinstance(entry, str) and entry.startswith(_TOKEN_PREFIX):
        try:
            return int(entry[len(_TOKEN_PREFIX) :])
        except ValueError:
            pass
    raise EngineError(
        f"{url} returned token {entry!r} instead of 'token_id:<N>'; start vLLM with token-id support "
        "(return_tokens_as_token_ids)"
    )


def parse_completion(data: Any, url: str) -> Completion:
    """Turn one ``/completions`` JSON reply into a ``Completion``; ``EngineError`` when malformed."""
    try:
        choice = data["choices"][0]
    except (KeyError, IndexError, TypeError):
        raise EngineError(f"{url} returned no choices: {str(data)[:200]}") from None
    logprobs_block = choice.get("logprobs") or {}
    logprobs = logprobs_block.get("token_logprobs")
    token_ids = choice.get("token_ids")
    if token_ids is None:
        tokens = logprobs_block.get("tokens")
        if tokens is None:
            raise EngineError(f"{url} returned neither choices[0].token_ids nor logprobs.tokens")
        token_ids = [_parse_token(entry, url) for entry in tokens]
    else:
        token_ids = [_parse_token(entry, url) for entry in token_ids]
    if logprobs is None:
        raise EngineError(f"{url} returned no logprobs.token_logprobs (the request asked for logprobs=1)")
    if len(logprobs) != len(token_ids):
        raise EngineError(f"{url} returned {len(token_ids)} token ids but {len(logprobs)} logprobs")
    if any(value is None for value in logprobs):
        raise EngineError(f"{url} returned a null logprob for a generated token")
    finish = choice.get("finish_reason")
    if finish not in ("stop", "length"):
        raise EngineError(f"{url} finished with {finish!r}; expected 'stop' or 'length'")
    return Completion(token_ids=token_ids, logprobs=[float(v) for v in logprobs], finish_reason=finish)


class OpenAIEngine:
    """Calls ``POST {base_url}/completions``; ``base_url`` is as for the openai client (``http://host:8000/v1``).

    A missing API-key environment variable means the key ``"EMPTY"`` (vLLM does not check it).
    One HTTP client is kept per event loop, because an async client cannot cross loops.
    """

    def __init__(self, base_url: str, model_name: str, api_key_env: str = "OPENAI_API_KEY", timeout_s: float = 600) -> None:
        self.base_url = base_url.rstrip("/")
        self.url = f"{self.base_url}/completions"
        self.model_name = model_name
        self.timeout_s = timeout_s
        self._api_key = os.environ.get(api_key_env) or "EMPTY"
        self._clients: dict[asyncio.AbstractEventLoop, httpx.AsyncClient] = {}
        self._closed = False

    def request_body(self, prompt_ids: list[int], params: SamplingParams) -> dict[str, Any]:
        """The JSON sent for one call (public so tests and logs can show it)."""
        body: dict[str, Any] = {
            "model": self.model_name,
            "prompt": list(prompt_ids),
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "n": 1,
            "stream": False,
            "logprobs": 1,
            "return_tokens_as_token_ids": True,
            "return_token_ids": True,
            "skip_special_tokens": False,
            "include_stop_str_in_output": True,
            "stop_token_ids": list(params.stop_token_ids),
        }
        if params.top_k > 0:
            body["top_k"] = params.top_k
        if params.seed is not None:
            body["seed"] = params.seed
        return body

    def _client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        for stale in [known for known in self._clients if known.is_closed()]:
            del self._clients[stale]
        client = self._clients.get(loop)
        if client is None:
            client = httpx.AsyncClient(
                timeout=httpx.Timeout(self.timeout_s),
                headers={"Authorization": f"Bearer {self._api_key}"},
                limits=httpx.Limits(max_connections=None, max_keepalive_connections=64),
            )
            self._clients[loop] = client
        return client

    async def generate(self, prompt_ids: list[int], params: SamplingParams, *, context: dict | None = None) -> Completion:
        """One ``/completions`` call; ``EngineError`` on connection, HTTP or format problems."""
        if self._closed:
            raise EngineError(f"OpenAIEngine for {self.url} is closed")
        client = self._client()
        try:
            response = await client.post(self.url, json=self.request_body(prompt_ids, params))
        except httpx.TimeoutException:
            raise EngineError(f"no answer from {self.url} within {self.timeout_s} s") from None
        except httpx.HTTPError as exc:
            raise EngineError(f"cannot reach OpenAI-compatible server at {self.url}: {type(exc).__name__}: {exc}") from None
        if response.status_code != 200:
            detail = " ".join(response.text.split())[:300]
            raise EngineError(f"{self.url} answered HTTP {response.status_code}: {detail}")
        try:
            data = response.json()
        except ValueError:
            raise EngineError(f"{self.url} returned invalid JSON: {response.text[:200]!r}") from None
        return parse_completion(data, self.url)

    async def aclose(self) -> None:
        """Close the client of the running loop (and forget the others)."""
        self._closed = True
        loop = asyncio.get_running_loop()
        client = self._clients.pop(loop, None)
        self._clients.clear()
        if client is not None:
            await client.aclose()

    def close(self) -> None:
        """Close every client whose loop can still run it. Idempotent."""
        self._closed = True
        clients, self._clients = self._clients, {}
        for loop, client in clients.items():
            if loop.is_closed():
                continue
            if loop.is_running():
                loop.call_soon_threadsafe(lambda c=client, lp=loop: lp.create_task(c.aclose()))
            else:
                loop.run_until_complete(client.aclose())
