"""The `openai` backend against real servers: llama.cpp's (on the embedded GGUF) and small
local HTTP servers that misbehave on purpose (errors, then success)."""

import pytest

from neuromas import baselines, tasks
from neuromas.backends.base import GenerationRequest
from neuromas.backends.openai import OpenAIBackend
from neuromas.config import ModelConfig, ServerConfig
from neuromas.errors import NeuromasError
from neuromas.eval import evaluate
from neuromas.localserver import ThreadedServer, free_port
from neuromas.network import Network

pytest.importorskip("openai")


def openai_network(url: str, layers=(2, 1), tokens: int = 24, **server) -> Network:
    model = ModelConfig(backend="openai", server=ServerConfig(**{"base_url": url, "max_retries": 1, **server}))
    return Network({"layers": list(layers), "generation": {"max_new_tokens": tokens}}, model=model)


@pytest.mark.slow
def test_a_network_and_a_baseline_run_through_llama_cpp(llama_server):
    task = tasks.load("arith", operands=2, digits=1, test_size=32)
    net = openai_network(llama_server)
    self_check = baselines.load("self-check", net.backend, max_new_tokens=24)  # the same server, a baseline
    for solver, names in [(net, {"L1N1", "L1N2", "L2N1"}), (self_check, {"draft", "check"})]:
        result = evaluate(solver, task, limit=6, batch_size=6, progress=False)
        assert result.n == 6 and result.calls_per_q == len(names)
        for trace in result.traces:
            assert set(trace.messages) == names
            assert all(m.text.strip() for m in trace.messages.values())
            assert trace.reward in (0.0, 1.0)
        assert 0 < result.tokens_per_q <= 24 * len(names)  # the server's usage counts
        assert result.prompt_tokens_per_q > 30 * len(names)  # every call's prompt, system turn included
    assert net.backend.model == "smollm2-135m"  # model.name null: the one the server lists


@pytest.mark.slow
def test_greedy_through_the_server_is_reproducible_and_each_node_reads_its_sources(llama_server):
    net = openai_network(llama_server).eval()
    first, second = net(["What is 4+5?", "What is 7+1?"]), net(["What is 4+5?", "What is 7+1?"])
    assert [t.answer for t in first] == [t.answer for t in second]
    readout_prompt = first[0].messages["L2N1"].prompt
    assert first[0].messages["L1N1"].text.strip()[:20] in readout_prompt  # the edge carried the message


def test_no_server_is_one_line():
    net = openai_network(f"http://127.0.0.1:{free_port()}/v1", max_retries=0)
    with pytest.raises(NeuromasError, match="cannot reach a server at .* is it running"):
        net(["What is 1+1?"])


def flaky_app(failures: int, status: int):
    """An OpenAI-style server that answers `status` to the first `failures` chat requests."""
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    app, seen = FastAPI(), []

    @app.get("/health")
    def health():
        return {"status": "ok"}

    @app.post("/v1/chat/completions")
    def chat(body: dict):
        seen.append(body)
        if len(seen) <= failures:
            return JSONResponse({"error": {"message": "busy"}}, status_code=status, headers={"retry-after-ms": "10"})
        return {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                "choices": [{"index": 0, "finish_reason": "length",
                             "message": {"role": "assistant", "content": "Answer: 2"}}],
                "usage": {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14}}

    app.state.seen = seen
    return app


@pytest.mark.parametrize("status", [429, 503])
def test_retries_on_rate_limits_and_server_errors(status):
    app = flaky_app(failures=2, status=status)
    with ThreadedServer(app) as server:
        backend = OpenAIBackend(ServerConfig(base_url=f"{server.url}/v1", max_retries=2), model="m")
        (out,) = backend.generate([GenerationRequest([{"role": "user", "content": "1+1?"}], None, 5, 0.0)])
    assert len(app.state.seen) == 3  # two failures, then the answer
    assert (out.text, out.completion_tokens, out.prompt_tokens, out.finished) == ("Answer: 2", 3, 11, False)
    assert app.state.seen[0]["max_tokens"] == 5 and app.state.seen[0]["temperature"] == 0.0


def test_gives_up_after_max_retries_with_the_status():
    with ThreadedServer(flaky_app(failures=10, status=503)) as server:
        backend = OpenAIBackend(ServerConfig(base_url=f"{server.url}/v1", max_retries=1), model="m")
        with pytest.raises(NeuromasError, match="answered 503: busy"):
            backend.generate([GenerationRequest([{"role": "user", "content": "1+1?"}], None, 5, 0.0)])


def test_adapters_as_models_sends_each_node_to_its_adapter():
    app = flaky_app(failures=0, status=200)
    with ThreadedServer(app) as server:
        net = openai_network(f"{server.url}/v1", adapters_as_models=True).attach_adapters()
        net(["What is 1+1?"])
    assert sorted(body["model"] for body in app.state.seen) == ["L1N1", "L1N2", "L2N1"]


def test_training_needs_the_hf_backend():
    net = openai_network("http://127.0.0.1:1/v1")
    with pytest.raises(NeuromasError, match="training needs the hf backend"):
        net.attach_adapters()


@pytest.mark.slow
def test_the_eval_command_runs_through_the_server(llama_server, tmp_path):
    import json

    from typer.testing import CliRunner

    from neuromas.cli import app

    result = CliRunner().invoke(app, [
        "eval", "configs/quickstart.yaml", "--limit", "4", "--out", str(tmp_path / "run"), "--quiet",
        "--set", "model.backend=openai", "--set", f"model.server.base_url={llama_server}", "--set", "train.steps=0",
    ])
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved["backend"] == "openai" and saved["model_dtype"] is None and saved["eval"]["n"] == 4


def test_a_server_backend_cannot_train():
    from neuromas.configfile import parse_config

    with pytest.raises(NeuromasError, match="model.backend openai cannot train"):
        parse_config({"model": {"backend": "openai"}, "network": {"layers": [1]}, "task": {"name": "arith"},
                      "train": {"steps": 2}})
