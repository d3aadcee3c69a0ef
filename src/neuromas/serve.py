"""`neuromas serve RUN`: a network behind an OpenAI-compatible API (FastAPI + uvicorn).

Any OpenAI client can use a trained network as if it were one model:

    client = OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="...")
    reply = client.chat.completions.create(model="neuromas", messages=[{"role": "user", "content": q}])
    reply = client.chat.completions.create(..., extra_body={"trace": True})  # + every node's message

The last user message is the task input; the network decodes greedily (as at evaluation) and
the readout's message is the reply. Concurrent requests are batched: a collector takes what is
waiting (up to `max_batch`, waiting at most `batch_wait_ms` after the first) and runs it as one
batched forward pass in a worker thread, so N clients cost one pass per layer, not N. The queue
is bounded (429 when full), inputs are bounded in length (413, and a request body in bytes
before it is read whole; 431 for headers over 16 KB), a body that is not JSON gets 415, every request has a deadline (504),
a bad request gets its 4xx, and none of them takes the server down. SIGTERM or Ctrl-C stops
accepting, lets the requests in flight finish (up to the timeout) and exits with status 0.
"""

from __future__ import annotations

import asyncio
import secrets
import signal
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from neuromas.build import load_task
from neuromas.configfile import load_config
from neuromas.errors import NeuromasError, missing_extra
from neuromas.network import Network
from neuromas.tasks.base import Task
from neuromas.trace import Trace


@dataclass
class ServeSettings:
    model_id: str = "neuromas"  # the name clients put in `model`
    api_key: str | None = None  # None: no authentication (localhost use)
    max_batch: int = 32  # most questions in one forward pass
    batch_wait_ms: float = 10.0  # how long the first waiting request waits for company
    max_queue: int = 256  # waiting requests beyond this get 429
    max_input_chars: int = 8000  # a longer user message gets 413
    timeout_s: float = 300.0  # a request not answered by then gets 504
    max_body_bytes: int = 1 << 20  # a larger request body gets 413 before it is read whole
    max_header_bytes: int = 16 << 10  # larger request headers (all of them) get 431, or 400 from the HTTP parser


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str | None = None


class ChatRequest(BaseModel):
    """The fields of OpenAI's chat request a network can honour; others are accepted and ignored
    (clients send many defaults), except those that would change the answer's meaning."""

    model_config = ConfigDict(extra="allow")

    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    n: int = Field(1, ge=1, le=1)
    stream: bool = False
    trace: bool = False
    """neuromas extension: also return every node's message (`extra_body={"trace": True}`)."""


@dataclass
class _Pending:
    text: str
    future: asyncio.Future


class Batcher:
    """Collects waiting requests into batches and runs each as one greedy forward pass.

    The passes run one at a time on a thread of their own. asyncio's default executor (what
    `asyncio.to_thread` uses) starts a new thread whenever the last one has not yet marked itself
    idle, which it does only after the awaiting coroutine may have resumed: under load the server
    grew from 4 to 5 threads (issue 21's fault run), up to that pool's limit."""

    def __init__(self, net: Network, task: Task | None, settings: ServeSettings):
        self.net, self.task, self.settings = net, task, settings
        self.queue: asyncio.Queue[_Pending] = asyncio.Queue(maxsize=settings.max_queue)
        self.batches = 0
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="neuromas-forward")

    async def submit(self, text: str) -> Trace:
        future = asyncio.get_running_loop().create_future()
        self.queue.put_nowait(_Pending(text, future))  # raises QueueFull: the caller answers 429
        return await asyncio.wait_for(future, self.settings.timeout_s)

    async def run(self) -> None:
        while True:
            batch = [await self.queue.get()]
            deadline = time.monotonic() + self.settings.batch_wait_ms / 1000
            while len(batch) < self.settings.max_batch:
                remaining = deadline - time.monotonic()
                try:
                    batch.append(self.queue.get_nowait() if remaining <= 0 else
                                 await asyncio.wait_for(self.queue.get(), remaining))
                except (asyncio.QueueEmpty, asyncio.TimeoutError):
                    break
            batch = [p for p in batch if not p.future.done()]  # drop requests that timed out waiting
            if not batch:
                continue
            try:
                traces = await asyncio.get_running_loop().run_in_executor(
                    self.executor, self._forward, [p.text for p in batch])
            except Exception as error:  # a failed pass fails its requests, not the server
                for pending in batch:
                    if not pending.future.done():
                        pending.future.set_exception(error)
                continue
            self.batches += 1
            for pending, trace in zip(batch, traces):
                if not pending.future.done():
                    pending.future.set_result(trace)

    def _forward(self, texts: list[str]) -> list[Trace]:
        self.net.eval()
        return self.net(texts, task=self.task)


def create_app(net: Network, task: Task | None = None, settings: ServeSettings | None = None):
    """The FastAPI app serving `net`; `task` gives the readout its answer format."""
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse

    settings = settings or ServeSettings()
    batcher = Batcher(net, task, settings)

    @asynccontextmanager
    async def lifespan(app):
        worker = asyncio.create_task(batcher.run())
        yield
        worker.cancel()
        batcher.executor.shutdown(wait=False)

    app = FastAPI(title="neuromas", lifespan=lifespan)
    app.state.batcher = batcher
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes, max_header_bytes=settings.max_header_bytes)

    def error(status: int, message: str, kind: str = "invalid_request_error") -> JSONResponse:
        return JSONResponse({"error": {"message": message, "type": kind, "code": status}}, status_code=status)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
        return error(400, f"{where}: {first.get('msg', 'invalid request')}")

    @app.middleware("http")
    async def authenticate(request: Request, call_next):
        if settings.api_key and request.url.path.startswith("/v1/"):
            given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
            if not secrets.compare_digest(given, settings.api_key):
                return error(401, "invalid or missing API key (send Authorization: Bearer <key>)", "authentication_error")
        return await call_next(request)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "waiting": batcher.queue.qsize(), "batches": batcher.batches}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [_model_card(settings.model_id, net)]}

    @app.post("/v1/chat/completions")
    async def chat(request: ChatRequest):
        if request.model != settings.model_id:
            return error(404, f"model {request.model!r} not found; this server serves {settings.model_id!r}",
                         "model_not_found")
        if request.stream:
            return error(400, "stream: streaming is not supported; send stream=false")
        users = [m.content for m in request.messages if m.role == "user" and m.content]
        if not users:
            return error(400, "messages: no user message with content (its text is the task input)")
        text = users[-1]
        if len(text) > settings.max_input_chars:
            return error(413, f"the user message has {len(text)} characters; the limit is {settings.max_input_chars}")
        try:
            trace = await batcher.submit(text)
        except asyncio.QueueFull:
            return error(429, f"{settings.max_queue} requests are already waiting; retry later", "rate_limit_error")
        except asyncio.TimeoutError:
            return error(504, f"no answer within {settings.timeout_s:g} s", "timeout")
        return _completion(request, trace, settings.model_id)

    return app


class BodyLimit:
    """ASGI middleware: headers larger than `max_header_bytes` in all get 431 (any method); a POST
    whose body is not JSON gets 415, one larger than `max_bytes` gets 413, counted as it arrives
    (a chunked body has no Content-Length), so it is never held whole."""

    def __init__(self, app, max_bytes: int, max_header_bytes: int = 16 << 10):
        self.app, self.max_bytes, self.max_header_bytes = app, max_bytes, max_header_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        # uvicorn's parser (h11) bounds only headers that arrive in several reads (run_server sets
        # that bound too); headers that came in one read (64 KB on localhost) are counted here
        header_bytes = sum(len(k) + len(v) + 4 for k, v in scope["headers"])  # "k: v\r\n"
        if header_bytes > self.max_header_bytes:
            return await _reply(send, 431, f"the request headers have {header_bytes} bytes; the limit is "
                                           f"{self.max_header_bytes}")
        if scope["method"] != "POST":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        kind = headers.get("content-type", "application/json").split(";")[0].strip().lower()
        if kind != "application/json" and not kind.endswith("+json"):
            return await _reply(send, 415, f"content type {kind!r}: send the request as application/json")
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            return await _reply(send, 413, f"the request body has {declared} bytes; the limit is {self.max_bytes}")
        received, replied = 0, False

        async def counted_receive():
            nonlocal received, replied
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    replied = True
                    await _reply(send, 413, f"the request body is over the limit of {self.max_bytes} bytes")
                    return {"type": "http.disconnect"}  # the app stops reading; its own reply is dropped
            return message

        async def guarded_send(message):
            if not replied:
                await send(message)

        return await self.app(scope, counted_receive, guarded_send)


async def _reply(send, status: int, message: str) -> None:
    import json

    body = json.dumps({"error": {"message": message, "type": "invalid_request_error", "code": status}}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


def require_server() -> None:
    """FastAPI and uvicorn (default dependencies since issue 19) are importable, or one line that
    says which extra brings them back to a trimmed install."""
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise missing_extra("neuromas serve (FastAPI and uvicorn)", "serve") from None


def uvicorn_options(settings: ServeSettings) -> dict:
    """The HTTP parser's bound on a request line and headers still arriving (400 beyond it; the app
    answers 431 to headers over `max_header_bytes` that it gets whole: BodyLimit), above the app's
    limit so that headers between the two get 431 however the network splits them. Shared with the
    tests' in-process server, so that they test this configuration."""
    return {"h11_max_incomplete_event_size": settings.max_header_bytes + 8192}


def run_server(app, host: str, port: int, settings: ServeSettings) -> None:
    """Serve `app` until SIGTERM or Ctrl-C, then stop accepting, let the requests in flight
    finish (up to the request timeout) and return, so that the process exits with status 0.

    uvicorn raises the signal again once it has shut down, under the handler that was there
    before it started: a handler that ignores it is installed for the while, so a shutdown asked
    for is not reported as a crash.
    """
    import uvicorn

    config = uvicorn.Config(app, host=host, port=port, log_level="warning",
                            timeout_graceful_shutdown=int(settings.timeout_s) + 1, **uvicorn_options(settings))
    previous = {signum: signal.signal(signum, lambda *_: None) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        uvicorn.Server(config).run()
    except OSError as error:  # the port is taken, or the address is not this machine's
        raise NeuromasError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _model_card(model_id: str, net: Network) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": int(time.time()), "owned_by": "neuromas",
            "widths": net.topology.widths, "calls_per_question": net.calls_per_pass}


def _completion(request: ChatRequest, trace: Trace, model_id: str) -> dict[str, Any]:
    readout = trace.messages[next(reversed(trace.messages))]
    body = {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model_id,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": trace.answer},
            "finish_reason": "stop" if readout.finished else "length",
        }],
        "usage": {"prompt_tokens": trace.prompt_tokens, "completion_tokens": trace.tokens,
                  "total_tokens": trace.prompt_tokens + trace.tokens},
    }
    if request.trace:
        body["trace"] = {node: message.text for node, message in trace.messages.items()}
    return body


def load_served_network(path) -> tuple[Network, Task | None, str]:
    """(network, task for its answer format, model id) from a run directory, a saved network
    or a config file (an untrained network)."""
    path = Path(path)
    if path.is_file():
        config = load_config(path)
        return Network.from_config(config), _task_or_none(config, load_task), path.stem
    if not path.is_dir():
        raise NeuromasError(f"{path}: not a run directory, saved network or config file")
    saved = (path / "final" / "network.yaml").is_file() or (path / "network.yaml").is_file()
    config = load_config(path / "config.yaml") if (path / "config.yaml").is_file() else None
    if saved:
        net = Network.load(path)
    elif config is not None:
        net = Network.from_config(config)
    else:
        raise NeuromasError(f"{path}: no trained network (final/) and no config.yaml to build one from")
    task = _task_or_none(config, load_task) if config is not None else None
    return net, task, path.resolve().name


def _task_or_none(config, load_task) -> Task | None:
    try:
        return load_task(config)
    except NeuromasError:  # the task's data is not here: serve with the default answer format
        return None
