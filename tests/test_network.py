"""The batched forward pass on the real embedded model."""

import pytest

from neuromas.backends.base import GenerationRequest
from neuromas.errors import NeuromasError
from neuromas.network import Network
from neuromas.prompts import node_prompt
from neuromas.tasks.base import Example, Task

INPUTS = ["What is 3+5+2+7?", "What is 9+1+4+4?", "What is 6+6+0+8?"]


class SumTask(Task):
    """A minimal in-test task: the sum of the numbers in the input."""

    name = "sum"
    answer_format = "End your message with 'Answer: <integer>'."

    def extract(self, completion, example=None):
        digits = [w.strip(".") for w in completion.replace(":", " ").split() if w.strip(".").isdigit()]
        return digits[-1] if digits else None


def small_net(backend, layers=(2, 1), tokens=16):
    config = {"layers": list(layers), "generation": {"max_new_tokens": tokens, "temperature": 1.0}}
    return Network(config, backend=backend, seed=3)


@pytest.mark.slow
def test_batched_forward_equals_one_input_at_a_time(backend32):
    net = small_net(backend32).eval()
    batched = net(INPUTS)
    for text, trace in zip(INPUTS, batched):
        (alone,) = net([text])
        assert alone.messages.keys() == trace.messages.keys() == {"L1N1", "L1N2", "L2N1"}
        for node_id, message in trace.messages.items():
            assert message.token_ids == alone.messages[node_id].token_ids, node_id
        assert trace.answer == alone.answer == trace.messages["L2N1"].text


@pytest.mark.slow
def test_forward_matches_naive_per_node_generation(backend32):
    """The layer-batched pass equals generating each node's message on its own, in order."""
    net = small_net(backend32, layers=(1, 1, 1)).eval()
    (trace,) = net([INPUTS[0]])
    incoming = {}
    for node_id, node in net.named_nodes():
        chat = node_prompt(node, net.topology, INPUTS[0], incoming, "End your message with 'Answer: <answer>'.")
        (gen,) = backend32.generate([GenerationRequest(chat, None, 16, 0.0)])
        assert gen.token_ids == trace.messages[node_id].token_ids, node_id
        incoming = {node_id: gen.text}


@pytest.mark.slow
def test_samples_are_grouped_seeded_and_scored(backend32):
    net = small_net(backend32, tokens=8)
    examples = [Example(str(i), text, str(sum(int(c) for c in text if c.isdigit()))) for i, text in enumerate(INPUTS[:2])]
    traces = net(examples, num_samples=3, task=SumTask(), seed=11)
    assert [(t.example_id, t.sample) for t in traces] == [(e, s) for e in ("0", "1") for s in range(3)]
    assert all(t.reward in (0.0, 1.0) and t.target is not None for t in traces)
    assert all(len(m.logprobs) == len(m.token_ids) <= 8 for t in traces for m in t.messages.values())
    again = net(examples, num_samples=3, task=SumTask(), seed=11)
    assert [t.answer for t in traces] == [t.answer for t in again]
    # sampled passes of one input differ somewhere (3 passes x 3 nodes x 8 tokens at T=1)
    assert len({tuple(tuple(m.token_ids) for m in t.messages.values()) for t in traces[:3]}) > 1
    net.eval()
    greedy = net(examples, num_samples=2, task=SumTask())
    assert greedy[0].answer == greedy[1].answer and greedy[0].sample == 0 and greedy[1].sample == 1


class CountingBackend:
    """Numbers every message it writes: which passes share a sample shows in the text."""

    def __init__(self):
        self.written = 0

    def generate(self, requests, seed):
        from neuromas.backends.base import Generation

        start, self.written = self.written, self.written + len(requests)
        return [Generation(f"m{start + k}", [1], [-0.5]) for k in range(len(requests))]


def test_branching_shares_each_upstream_sample_with_the_passes_below_it():
    backend = CountingBackend()
    net = Network({"layers": [2, 1]}, backend=backend).train()
    traces = net(["What is 1+2?", "What is 3+4?"], num_samples=6, seed=0, branching=[3, 2])
    assert backend.written == 2 * (2 * 3 + 6)  # per input: 2 first-layer nodes x 3 samples, 6 readouts
    for i in range(2):
        group = traces[6 * i: 6 * (i + 1)]
        first = [t.messages["L1N1"] for t in group]
        assert [first[s] is first[s - s % 2] for s in range(6)] == [True] * 6  # passes 2k and 2k + 1 share
        assert len({m.text for m in first}) == 3 and len({t.messages["L2N1"].text for t in group}) == 6
        assert group[1].messages["L2N1"].prompt == group[0].messages["L2N1"].prompt  # siblings read the same
    with pytest.raises(NeuromasError, match="product is the group size 6"):
        net(["What is 1+2?"], num_samples=6, seed=0, branching=[2, 2])
    greedy = net.eval()(["What is 1+2?"], num_samples=6, branching=[3, 2])  # eval decodes once: no tree
    assert len({t.messages["L1N1"].text for t in greedy}) == 1


class EchoBackend:
    """Answers every request with the last line of its user turn: shows what each node was shown."""

    def generate(self, requests, seed):
        from neuromas.backends.base import Generation

        return [Generation(r.messages[1]["content"].splitlines()[-1], [], []) for r in requests]


def test_input_slices_show_each_first_layer_node_its_part():
    import neuromas.tasks as tasks

    task = tasks.load("arith", operands=4)
    net = Network({"layers": [2, 1], "input_slices": True}, backend=EchoBackend()).eval()
    example = task.examples("test")[0]
    a, b, c, d = example.meta["operands"]
    (trace,) = net([example], task=task)
    assert trace.messages["L1N1"].text == f"What is {a}+{b}?"
    assert trace.messages["L1N2"].text == f"What is {c}+{d}?"
    assert f"{example.input}\n\nMessages:" in trace.messages["L2N1"].prompt, "the readout sees the whole task"
    with pytest.raises(NeuromasError, match="input_slices needs the task"):
        net([example])


def test_input_to_all_question_shows_later_layers_the_question_without_the_data():
    import neuromas.tasks as tasks

    task = tasks.load("lookup", pairs=6, queries=2, test_size=4, train_size=0)
    net = Network({"layers": [2, 1], "input_slices": True, "input_to_all": "question"}, backend=EchoBackend()).eval()
    example = task.examples("test")[0]
    question, *lines = example.input.splitlines()
    (trace,) = net([example], task=task)
    readout = trace.messages["L2N1"].prompt
    seen = readout.split("Messages:")[0]  # the messages echo the parts' last lines
    assert seen.endswith(f"{question}\n\n") and not any(line in seen for line in lines)
    assert "Reads: the task's question and L1N1, L1N2." in readout
    assert lines[0] in trace.messages["L1N1"].prompt and lines[-1] in trace.messages["L1N2"].prompt
    assert "(L2N1) <- L1N1, L1N2, question  [readout]" in repr(net)
    whole_first = Network({"layers": [2, 1], "input_to_all": "question"}, backend=EchoBackend()).eval()
    with pytest.raises(NeuromasError, match="input_to_all: question needs the task"):
        whole_first([example])
    arith = tasks.load("arith", operands=4, test_size=4, train_size=0)  # a sum: its reducers are asked for the sum
    (trace,) = net(arith.examples("test")[:1], task=arith)
    seen = trace.messages["L2N1"].prompt.split("Messages:")[0]
    assert seen.endswith("What is the sum of the parts?\n\n")
    assert arith.examples("test")[0].meta["expression"] not in seen
    products = tasks.load("arith", operands=4, operators="*", test_size=4, train_size=0)  # parts that do not add up
    with pytest.raises(NeuromasError, match="parts that add up to the answer"):
        products.question(products.examples("test")[0])


def test_a_reduction_tree_shows_each_middle_node_the_question_of_its_half():
    import neuromas.tasks as tasks

    task = tasks.load("lookup", pairs=8, digits=1, queries=4, test_size=2, train_size=0)
    edges = ["L1N1->L2N1", "L1N2->L2N1", "L1N3->L2N2", "L1N4->L2N2", "L2N1->L3N1", "L2N2->L3N1"]
    net = Network({"layers": [4, 2, 1], "edges": edges, "input_slices": True, "input_to_all": "question"},
                  backend=EchoBackend()).eval()
    example = task.examples("test")[0]
    keys, queries = example.meta["keys"], example.meta["queries"]
    (trace,) = net([example], task=task)
    for i, middle in enumerate(("L2N1", "L2N2")):
        first, second = (keys[q] for q in queries[2 * i:2 * i + 2])
        prompt = trace.messages[middle].prompt
        assert f"Find the sum of the numbers of the {first} and the {second}.\n\n" in prompt
        assert f"Reads: the question of part {i + 1} of 2 of the task and L1N{2 * i + 1}, L1N{2 * i + 2}." in prompt
        assert not any(line in prompt.split("Messages:")[0] for line in example.input.splitlines()[1:])
    assert example.input.splitlines()[0] in trace.messages["L3N1"].prompt
    assert "Reads: the task's question and L2N1, L2N2." in trace.messages["L3N1"].prompt
    assert "(L2N2) <- L1N3, L1N4, question part 2 of 2" in repr(net)
