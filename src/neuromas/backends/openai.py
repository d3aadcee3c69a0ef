"""The `openai` backend: nodes call an OpenAI-compatible chat server.

Any server that speaks `/v1/chat/completions` works: llama.cpp's server (and
`python -m llama_cpp.server`), `vllm serve`, hosted APIs. A layer's batch becomes that many
concurrent requests, at most `server.max_concurrency` in flight; the official `openai` client
retries 408/409/429/5xx answers, timeouts and dropped connections with exponential backoff, so
we do not write our own retry loop. Errors a retry cannot fix (a bad key, an unknown model, a
server that is not there) stop the run with one line that says what to change.

What a server cannot give: token ids and sampling log-probs, so this backend evaluates, runs
baselines and serves, but does not train. Token counts come from the server's `usage`.
Reproducibility is the server's: each request carries a seed, which llama.cpp and vLLM honour.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os

from neuromas.backends.base import Generation, GenerationRequest
from neuromas.config import AdapterConfig, ModelConfig, ServerConfig
from neuromas.errors import NeuromasError, missing_extra
from neuromas.seeds import derive_seed


class OpenAIBackend:
    """Sends each node's chat to an OpenAI-compatible server; one request per message."""

    def __init__(self, server: ServerConfig | None = None, model: str | None = None):
        try:
            import openai  # noqa: F401
        except ImportError:
            raise missing_extra("model.backend openai (the openai client)", "openai") from None
        self.server = server or ServerConfig()
        self.model = model  # None: the first model the server lists, looked up on first use

    @property
    def serves_adapters(self) -> bool:
        """A trained network's nodes run on the server's LoRA modules named after their adapters."""
        return self.server.adapters_as_models

    def with_adapters(self, names: list[str], config: AdapterConfig, seed: int = 0) -> OpenAIBackend:
        """The server holds the adapters: requests name them (`server.adapters_as_models`)."""
        if not self.serves_adapters:
            raise NeuromasError("training needs the hf backend (transformers + PEFT); set model.backend: hf "
                                "(or model.server.adapters_as_models: true to run adapters a server holds)")
        return self

    @classmethod
    def from_config(cls, config: ModelConfig) -> OpenAIBackend:
        return cls(config.server, config.name)

    def generate(self, requests: list[GenerationRequest], seed: int = 0) -> list[Generation]:
        return _run(self._generate_all(requests, seed))

    def models(self) -> list[str]:
        """The model names the server serves (its /v1/models)."""
        return _run(self._with_client(self._list_models))

    # ------------------------------------------------------------------------------------------
    def _client(self):
        from openai import AsyncOpenAI

        # Local servers take any key; the client insists on one being set.
        key = os.environ.get(self.server.api_key_env) or "none"
        return AsyncOpenAI(base_url=self.server.base_url, api_key=key, timeout=self.server.timeout_s,
                           max_retries=self.server.max_retries)

    async def _with_client(self, work):
        async with self._client() as client:
            return await work(client)

    async def _list_models(self, client) -> list[str]:
        page = await self._call(client.models.list(), None)
        return [m.id for m in page.data]

    async def _generate_all(self, requests: list[GenerationRequest], seed: int) -> list[Generation]:
        async with self._client() as client:
            if self.model is None and not all(r.adapter and self.server.adapters_as_models for r in requests):
                served = await self._list_models(client)
                if not served:
                    raise NeuromasError(f"the server at {self.server.base_url} lists no models")
                self.model = served[0]
            in_flight = asyncio.Semaphore(self.server.max_concurrency)
            jobs = [self._one(client, in_flight, r, derive_seed(seed, "request", i) % 2**31) for i, r in enumerate(requests)]
            return list(await asyncio.gather(*jobs))

    async def _one(self, client, in_flight: asyncio.Semaphore, request: GenerationRequest, seed: int) -> Generation:
        model = request.adapter if (self.server.adapters_as_models and request.adapter) else self.model
        async with in_flight:
            response = await self._call(client.chat.completions.create(
                model=model, messages=request.messages, max_tokens=request.max_new_tokens,
                temperature=request.temperature, top_p=request.top_p, seed=seed,
            ), model)
        choice = response.choices[0]
        usage = response.usage
        return Generation(
            text=choice.message.content or "", token_ids=[], logprobs=[],
            finished=choice.finish_reason != "length",
            completion_tokens=usage.completion_tokens if usage else None,
            prompt_tokens=usage.prompt_tokens if usage else None,
        )

    async def _call(self, pending, model: str | None):
        """Await one API call, turning the errors retries cannot fix into one line each."""
        import openai

        url = self.server.base_url
        try:
            return await pending
        except (openai.AuthenticationError, openai.PermissionDeniedError) as error:
            raise NeuromasError(f"the server at {url} refused the API key ({error.status_code}): set "
                                f"{self.server.api_key_env} to a valid key") from None
        except openai.NotFoundError:
            raise NeuromasError(f"the server at {url} has no model {model!r}: set model.name to one of "
                                f"{await self._served_or_unknown()}") from None
        except openai.APITimeoutError:
            raise NeuromasError(f"the server at {url} did not answer within {self.server.timeout_s:g} s, "
                                f"{self.server.max_retries} retries included: raise model.server.timeout_s") from None
        except openai.APIConnectionError:
            raise NeuromasError(f"cannot reach a server at {url} ({self.server.max_retries} retries): "
                                "is it running, and is model.server.base_url right?") from None
        except openai.APIStatusError as error:
            raise NeuromasError(f"the server at {url} answered {error.status_code}: {_message(error)}") from None

    async def _served_or_unknown(self) -> str:
        try:
            async with self._client() as client:
                return str([m.id for m in (await client.models.list()).data])
        except Exception:  # the listing is only a hint in an error message
            return "the models the server lists (GET /v1/models)"


def _message(error) -> str:
    body = error.body if isinstance(error.body, dict) else {}
    nested = body.get("error")
    detail = body.get("message") or body.get("detail") or (nested.get("message") if isinstance(nested, dict) else nested)
    return str(detail or error.message).splitlines()[0][:300]


def _run(coroutine):
    """Run a coroutine to completion from sync code, also when this thread runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()
