"""`neuromas serve`: the real `openai` client against a network served on localhost."""

import concurrent.futures
import json
import urllib.error
import urllib.request

import pytest

from neuromas import tasks
from neuromas.backends.base import GenerationRequest
from neuromas.backends.openai import OpenAIBackend
from neuromas.config import ServerConfig
from neuromas.errors import NeuromasError
from neuromas.localserver import ThreadedServer
from neuromas.network import Network
from neuromas.serve import ServeSettings, create_app

openai = pytest.importorskip("openai")
pytestmark = pytest.mark.slow

QUESTIONS = [f"What is {a}+{b}?" for a, b in [(2, 3), (4, 4), (7, 1), (6, 2), (9, 9), (1, 5), (3, 8), (5, 5)]]


@pytest.fixture(scope="module")
def served(backend32):
    task = tasks.load("arith", operands=2, digits=1, test_size=32)
    net = Network({"layers": [2, 1], "generation": {"max_new_tokens": 12}}, backend=backend32).eval()
    expected = {t.input: t.answer for t in net(QUESTIONS, task=task)}  # the same network, in process
    settings = ServeSettings(model_id="net21", api_key="sekret", max_input_chars=200, batch_wait_ms=50)
    app = create_app(net, task, settings)
    with ThreadedServer(app) as server:
        yield server, app, expected


def client(server, key="sekret", retries=0):
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=retries)


def ask(c, question, **kwargs):
    return c.chat.completions.create(model="net21", messages=[{"role": "user", "content": question}], **kwargs)


def test_models_and_a_completion_equal_the_network_in_process(served):
    server, _, expected = served
    c = client(server)
    assert [m.id for m in c.models.list().data] == ["net21"]
    reply = ask(c, QUESTIONS[0])
    assert reply.choices[0].message.content == expected[QUESTIONS[0]]
    assert reply.usage.completion_tokens > 0 and reply.usage.prompt_tokens > 0


def test_the_trace_is_an_extra_field(served):
    server, _, expected = served
    reply = ask(client(server), QUESTIONS[1], extra_body={"trace": True})
    trace = reply.model_extra["trace"]
    assert list(trace) == ["L1N1", "L1N2", "L2N1"]
    assert trace["L2N1"] == expected[QUESTIONS[1]] == reply.choices[0].message.content


def test_concurrent_requests_are_batched_and_each_gets_its_own_answer(served):
    server, app, expected = served
    c, before = client(server), app.state.batcher.batches
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(lambda q: ask(c, q).choices[0].message.content, QUESTIONS))
    assert replies == [expected[q] for q in QUESTIONS]
    assert app.state.batcher.batches - before < len(QUESTIONS)  # some requests shared a forward pass


def post(server, body, key="sekret", raw=None):
    data = raw if raw is not None else json.dumps(body).encode()
    request = urllib.request.Request(f"{server.url}/v1/chat/completions", data=data, method="POST",
                                     headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.mark.parametrize("body, raw, status, says", [
    ({"model": "other", "messages": [{"role": "user", "content": "1+1?"}]}, None, 404, "not found"),
    ({"model": "net21", "messages": []}, None, 400, "messages"),
    ({"model": "net21"}, None, 400, "messages"),
    ({"model": "net21", "messages": [{"role": "user", "content": "x" * 201}]}, None, 413, "limit is 200"),
    ({"model": "net21", "messages": [{"role": "user", "content": "1+1?"}], "stream": True}, None, 400, "stream"),
    ({"model": "net21", "messages": [{"role": "user", "content": "1+1?"}], "n": 3}, None, 400, "n"),
    ({"model": "net21", "messages": [{"role": "system", "content": "hi"}]}, None, 400, "no user message"),
    ({"model": "net21", "messages": [{"role": "wizard", "content": "1+1?"}]}, None, 400, "role"),
    (None, b"{not json", 400, ""),
])
def test_bad_requests_get_a_4xx_and_the_server_stays_up(served, body, raw, status, says):
    server, _, _ = served
    code, reply = post(server, body, raw=raw)
    assert code == status and says in reply["error"]["message"]
    assert [m.id for m in client(server).models.list().data] == ["net21"]


def test_after_bad_requests_the_network_still_answers(served):
    server, _, expected = served
    assert post(server, None, raw=b"{not json")[0] == 400
    assert ask(client(server), QUESTIONS[2]).choices[0].message.content == expected[QUESTIONS[2]]


def test_a_wrong_api_key_is_401_and_a_one_line_error_for_the_openai_backend(served):
    server, _, _ = served
    with pytest.raises(openai.AuthenticationError):
        ask(client(server, key="wrong"), QUESTIONS[0])
    backend = OpenAIBackend(ServerConfig(base_url=f"{server.url}/v1", api_key_env="NO_SUCH_KEY_VAR"), model="net21")
    with pytest.raises(NeuromasError, match="refused the API key.*NO_SUCH_KEY_VAR"):
        backend.generate([GenerationRequest([{"role": "user", "content": "1+1?"}], None, 4, 0.0)])



def test_an_unknown_model_is_404_and_names_what_the_server_has(served, monkeypatch):
    server, _, _ = served
    monkeypatch.setenv("SERVED_KEY", "sekret")
    backend = OpenAIBackend(ServerConfig(base_url=f"{server.url}/v1", api_key_env="SERVED_KEY"), model="nope")
    with pytest.raises(NeuromasError, match=r"no model 'nope': set model.name to one of \['net21'\]"):
        backend.generate([GenerationRequest([{"role": "user", "content": "1+1?"}], None, 4, 0.0)])
