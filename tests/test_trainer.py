"""Joint training on the real embedded model: updates reach every node, and only its own adapter."""

import copy
import math

import pytest
import torch

from neuromas.backends import lora
from neuromas.backends.hf import _prefix_groups, token_logprobs
from neuromas.config import EvalConfig, TrainConfig
from neuromas.errors import NeuromasError
from neuromas.network import Network
from neuromas.rl.trainer import Trainer
from neuromas.tasks.base import Example, Task
from reference import ReferenceStep, Row


class LetterTask(Task):
    """Reward: how many times the readout writes the letter e, capped at 1 (dense, varied)."""

    name = "letters"
    answer_format = "Write one sentence."

    def __init__(self, reward=None):
        self._reward = reward

    def examples(self, split):
        return [Example(f"{split}{i}", f"Say something about the number {i}.", "e") for i in range(6)]

    def extract(self, completion, example=None):
        return completion

    def reward(self, completions, examples):
        if self._reward is not None:
            return [self._reward(c) for c in completions]
        return [min(c.count("e") / 10, 1.0) for c in completions]


def tiny_net(backend, layers=(2, 1), tokens=6, sharing="node"):
    config = {
        "layers": list(layers),
        "generation": {"max_new_tokens": tokens, "temperature": 1.0},
        "adapters": {"rank": 2, "sharing": sharing},
    }
    return Network(config, backend=backend, seed=5)


def lora_b(net, adapter):
    return {n: p.detach().clone() for n, p in net.named_parameters() if f".{adapter}." in n and "lora_B" in n}


@pytest.mark.slow
def test_fresh_adapters_are_the_base_model(backend32):
    net = tiny_net(backend32).eval()
    before = net(["What is 2+2?"])[0]
    net.attach_adapters()
    after = net(["What is 2+2?"])[0]
    assert {k: m.token_ids for k, m in before.messages.items()} == {k: m.token_ids for k, m in after.messages.items()}
    counts = {a: sum(p.numel() for n, p in net.named_parameters() if f".{a}." in n) for a in ("L1N1", "L1N2", "L2N1")}
    # rank 2 on q, k, v, o of 30 layers: (576 + 576 + 576 + 192 + 576 + 192 + 576 + 576) * 2 * 30
    assert counts == {a: 2 * 30 * (576 * 2 + 576 + 192 + 576 + 192 + 576 * 2) for a in counts}


@pytest.mark.slow
def test_one_step_changes_every_node_adapter(backend32):
    net = tiny_net(backend32)
    trainer = Trainer(net, LetterTask(), TrainConfig(steps=1, batch_size=2, group_size=4, lr=1e-2), progress=False)
    before = {a: lora_b(net, a) for a in ("L1N1", "L1N2", "L2N1")}
    metrics = trainer.train_step()
    assert metrics["grad/norm"] > 0 and metrics["reward/tied_fraction"] < 1
    for adapter, tensors in before.items():
        after = lora_b(net, adapter)
        assert any(not torch.equal(tensors[n], after[n]) for n in tensors), f"{adapter} did not move"
    assert {"node/L1N1/tokens", "node/L2N1/entropy", "reward/mean", "loss/policy", "lr"} <= metrics.keys()


@pytest.mark.slow
def test_gradient_reaches_only_the_rows_own_adapter(backend32):
    net = tiny_net(backend32).attach_adapters()
    trace = net(["Hello there."])[0]
    message = trace.messages["L1N2"]
    logprobs, mask = token_logprobs(net.backend, [message.prompt_ids], [message.token_ids], ["L1N2"], [1.0])
    (logprobs * mask).sum().backward()
    grads = {a: sum(float(p.grad.abs().sum()) for n, p in net.named_parameters() if f".{a}." in n and p.grad is not None)
             for a in ("L1N1", "L1N2", "L2N1")}
    assert grads["L1N2"] > 0 and grads["L1N1"] == 0 and grads["L2N1"] == 0


def test_prefix_groups_share_most_of_a_prompt_within_one_adapter():
    header = list(range(100, 120))
    prompts = [header + [1, 2], header + [1, 3, 4], header + [1, 2], [7, 8, 9], header + [1, 2]]
    adapters = ["A", "A", "A", "A", "B"]
    group_of, prefix_len = _prefix_groups(prompts, adapters)
    assert group_of[0] == group_of[1] == group_of[2] and prefix_len[group_of[0]] == 21  # the header and the 1
    assert len({group_of[0], group_of[3], group_of[4]}) == 3  # little in common; another adapter
    assert prefix_len[group_of[3]] == 2 and prefix_len[group_of[4]] == 21  # alone: all but the last token
    same, lengths = _prefix_groups([header, header], ["A", "A"])
    assert same == [0, 0] and lengths == [19]  # equal prompts keep one token to predict the completion from
    whole, lengths = _prefix_groups(prompts, adapters, whole=True)  # only equal prompts share
    assert whole[0] == whole[2] and len(set(whole)) == 4 and lengths[whole[0]] == 21 and lengths[whole[1]] == 22


def test_prefix_groups_join_when_it_saves_prompt_tokens():
    header = list(range(100, 120))
    questions = [header + [200 + q] * 30 for q in range(4)]  # a one-line header: less than half shared
    group_of, prefix_len = _prefix_groups(questions, ["A"] * 4)
    assert group_of == [0, 0, 0, 0] and prefix_len == [20]
    samples = [header + [1] * 40] * 3  # a group of 3 sharing 59 tokens, then a row sharing only the header
    group_of, prefix_len = _prefix_groups([*samples, header + [2] * 40], ["A"] * 4)
    assert group_of == [0, 0, 0, 1] and prefix_len == [59, 59]  # joining would cost 2 x 39 tokens to save 20
    group_of, prefix_len = _prefix_groups([header + [1] * 10] * 2 + [header + [2] * 40], ["A"] * 3)
    assert group_of == [0, 0, 0] and prefix_len == [20]  # 2 x 20 saved against 1 x 29: join
    assert _prefix_groups([[1] * 7 + [2], [1] * 7 + [3]], ["A"] * 2)[0] == [0, 1]  # too short to be worth a pass


@pytest.mark.slow
def test_shared_prompt_logprobs_equal_full_rows_values_and_gradients(backend32):
    """Running a shared prompt prefix once and each row's suffix and completion on its cache is exact, gradients too."""
    net = tiny_net(backend32).attach_adapters()
    with torch.no_grad():  # non-zero adapters, so that each row's own adapter matters
        for name, param in net.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.02)
    net.train()
    traces = net(["Hello there.", "Count to three."], num_samples=3)
    rows = [t.messages[n] for t in traces for n in ("L1N1", "L1N2", "L2N1")]
    args = ([m.prompt_ids for m in rows], [m.token_ids for m in rows], [m.node for m in rows], [0.7] * len(rows))
    assert len({(m.node, tuple(m.prompt_ids)) for m in rows}) < len(rows)  # some prompts do repeat
    group_of, _ = _prefix_groups(args[0], args[2])
    prompts_of_group: dict[int, set] = {}
    for group, prompt in zip(group_of, args[0]):
        prompts_of_group.setdefault(group, set()).add(tuple(prompt))
    assert any(len(p) > 1 for p in prompts_of_group.values()), "L2N1's prompts share the input but not the messages"
    results = []
    for share, prefixes in ((False, False), (True, False), (True, True)):  # full rows first
        net.backend.model.zero_grad(set_to_none=True)
        logprobs, mask = token_logprobs(net.backend, *args, share_prompts=share, share_prefixes=prefixes)
        (logprobs * torch.linspace(0.5, 1.5, logprobs.shape[1])).sum().backward()
        grads = {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}
        results.append((logprobs.detach(), mask, grads))
    (full, full_mask, full_grads), *shared_modes = results
    for shared, shared_mask, shared_grads in shared_modes:
        assert torch.equal(shared_mask, full_mask)
        torch.testing.assert_close(shared, full, atol=1e-4, rtol=1e-4)
        assert shared_grads.keys() == full_grads.keys() and len(full_grads) > 0
        for name in full_grads:
            torch.testing.assert_close(shared_grads[name], full_grads[name], atol=1e-4, rtol=1e-3)


@pytest.mark.slow
def test_rollouts_after_an_update_sample_from_the_updated_adapters(backend32):
    net = tiny_net(backend32, layers=(1,))
    trainer = Trainer(net, LetterTask(), TrainConfig(steps=2, batch_size=2, group_size=4, lr=5e-2), progress=False)
    trainer.train_step()
    trainer.train_step()
    trace = net(["Tell me a fact."], num_samples=1)[0]
    message = trace.messages["L1N1"]
    with torch.no_grad():
        current, _ = token_logprobs(net.backend, [message.prompt_ids], [message.token_ids], ["L1N1"], [1.0])
        base, _ = token_logprobs(net.backend, [message.prompt_ids], [message.token_ids], [None], [1.0])
    # sampling-time log-probs are those of the updated adapter, not of the base model
    assert message.logprobs == pytest.approx(current[0].tolist(), abs=2e-3)
    assert max(abs(a - b) for a, b in zip(message.logprobs, base[0].tolist())) > 0.05


@pytest.mark.slow
def test_tiny_training_run_raises_the_reward(backend32):
    """An easy task: start the message with "The" (about 11% of untrained samples do)."""
    task = LetterTask(reward=lambda c: float(c.strip().lower().startswith("the")))
    net = tiny_net(backend32, layers=(1,), tokens=3)
    config = TrainConfig(steps=8, batch_size=4, group_size=8, lr=2e-2, std_normalize=True)
    trainer = Trainer(net, task, config, progress=False)
    history = trainer.train()
    first, last = history[0]["reward/mean"], sum(m["reward/mean"] for m in history[-2:]) / 2
    assert last > first + 0.3, [round(m["reward/mean"], 3) for m in history]


@pytest.mark.slow
def test_non_finite_loss_skips_updates_then_stops(backend32):
    net = tiny_net(backend32, layers=(1,))
    task = LetterTask(reward=lambda c: math.nan if len(c) % 2 else 1.0)
    trainer = Trainer(net, task, TrainConfig(steps=5, batch_size=2, group_size=2, max_bad_steps=2), progress=False)
    before = lora_b(net, "L1N1")
    with pytest.raises(NeuromasError, match="non-finite loss or gradient 2 times in a row"):
        for _ in range(5):
            trainer.train_step()
    after = lora_b(net, "L1N1")
    assert all(torch.equal(before[n], after[n]) for n in before)


@pytest.mark.slow
def test_freeze_and_sharing_validation(backend32):
    net = tiny_net(backend32, sharing="layer")
    with pytest.raises(NeuromasError, match="shared with unfrozen nodes"):
        Trainer(net, LetterTask(), TrainConfig(freeze=["L1N1"]), progress=False)
    with pytest.raises(NeuromasError, match="L9N9 is not a node"):
        Trainer(tiny_net(backend32), LetterTask(), TrainConfig(freeze=["L9N9"]), progress=False)


@pytest.mark.slow
def test_readout_lr_is_the_readouts_step_size_alone(backend32):
    """Adam's first step moves every parameter with a gradient by its learning rate: the LoRA B
    matrices start at zero, so after one step their largest entry is each adapter's lr."""
    net = tiny_net(backend32)
    config = TrainConfig(steps=1, batch_size=2, group_size=4, lr=1e-3, readout_lr=4e-3, max_grad_norm=None)
    trainer = Trainer(net, LetterTask(), config, progress=False)
    trainer.train_step()
    largest = {a: max(float(t.abs().max()) for t in lora_b(net, a).values()) for a in ("L1N1", "L1N2", "L2N1")}
    assert largest["L2N1"] == pytest.approx(4e-3, rel=1e-3)
    assert largest["L1N1"] == pytest.approx(1e-3, rel=1e-3) and largest["L1N2"] == pytest.approx(1e-3, rel=1e-3)
    with pytest.raises(NeuromasError, match="readout shares adapter"):
        Trainer(tiny_net(backend32, sharing="all"), LetterTask(), config, progress=False)


@pytest.mark.slow
def test_resume_without_a_checkpoint_starts_over_and_forgets_its_logged_steps(backend32, tmp_path):
    """A run killed before its first checkpoint restarts at step 0; its old step lines must not stay."""
    from neuromas.rl.metrics import read_metrics

    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "reward/mean": 0.5}\n')
    trainer = Trainer(tiny_net(backend32, layers=(1,)), LetterTask(), TrainConfig(steps=1, batch_size=2, group_size=2),
                      run_dir=tmp_path, progress=False)
    assert not trainer.resume() and trainer.step == 0
    assert read_metrics(tmp_path) == []


def lora_a(net):
    return {n: p.detach().clone() for n, p in net.named_parameters() if "lora_A" in n}


@pytest.mark.slow
def test_fresh_adapters_follow_the_seed_not_the_global_generator(backend32):
    first = lora_a(tiny_net(backend32).attach_adapters())
    torch.rand(1000)  # whatever ran in between (an evaluation, a model load) must not matter
    second = lora_a(tiny_net(backend32).attach_adapters())
    assert first.keys() == second.keys() and all(torch.equal(first[n], second[n]) for n in first)
    other_seed = Network({"layers": [2, 1], "adapters": {"rank": 2}}, backend=backend32, seed=6).attach_adapters()
    assert not torch.equal(next(iter(lora_a(other_seed).values())), next(iter(first.values())))
    # a node's initial adapter is its own: the same whatever other nodes the network has
    alone = lora_a(tiny_net(backend32, layers=(1,)).attach_adapters())
    assert alone and all(torch.equal(p, first[n]) for n, p in alone.items())


def two_step_run(backend, eval_every=0):
    config = TrainConfig(steps=2, batch_size=2, group_size=4, lr=1e-2, eval_every=eval_every)
    trainer = Trainer(tiny_net(backend), LetterTask(), config, eval_config=EvalConfig(limit=2), progress=False)
    return trainer.train()


def without(history, prefixes):
    return [{k: v for k, v in m.items() if not k.startswith(prefixes)} for m in history]


@pytest.fixture(scope="module")
def two_step_history(backend32):
    """The metrics of one 2-step run without evaluations: the two tests below compare a run of
    their own with it (it is the first run of each, so it is trained once for both)."""
    return two_step_run(backend32)


@pytest.mark.slow
def test_two_runs_of_one_config_log_the_same_metrics(backend32, two_step_history):
    """Same config and seed, one process: every logged figure of every step is equal (CPU)."""
    torch.rand(1000)  # the global generator moved on since the first run
    again = two_step_run(backend32)
    assert without(again, "time/") == without(two_step_history, "time/")
    assert two_step_history[1]["grad/norm"] > 0  # the runs did update, so step 2 on depends on step 1's update


@pytest.mark.slow
def test_evaluations_do_not_change_the_training_samples(backend32, two_step_history):
    """Seeds are a function of (run seed, purpose, step): an evaluation between steps draws none."""
    evaluated = two_step_run(backend32, eval_every=1)
    assert "eval/acc" in evaluated[0] and "eval/acc" not in two_step_history[0]
    assert without(evaluated, ("time/", "eval/")) == without(two_step_history, ("time/", "eval/"))


@pytest.mark.slow
def test_periodic_evaluation_follows_the_eval_config(backend32):
    net = tiny_net(backend32, layers=(1,), tokens=2)
    trainer = Trainer(net, LetterTask(), TrainConfig(), eval_config=EvalConfig(split="train", limit=5, batch_size=2),
                      progress=False)
    batches = []
    forward = net.forward
    net.forward = lambda inputs, **kw: batches.append([x.id for x in inputs]) or forward(inputs, **kw)
    result = trainer.evaluate()
    assert result.split == "train" and result.n == 5
    assert batches == [["train0", "train1"], ["train2", "train3"], ["train4"]]


class HalfTiedTask(LetterTask):
    """The letter reward, except on the first input, whose G passes all score 0.5 (a tied group)."""

    answer_format = "Reply with one word."  # so that some messages finish within the budget

    def reward(self, completions, examples):
        return [0.5 if e.id == "train0" else min(c.count("e") / 10, 1.0) for c, e in zip(completions, examples)]

    def examples(self, split):
        return [Example(f"{split}{i}", f"Say something about the number {i}.", "e") for i in range(3)]


@pytest.mark.slow
def test_trainer_loss_and_gradients_equal_the_reference_step(backend32):
    """The Trainer's update (mixed-adapter micro-batches of 3, shared prompts and prefixes, rows of
    tied groups skipped, completion-only logits) against tests/reference.py's straightforward fp32
    step on the same rollouts. Measured differences here: loss 0 to 1e-9, gradients below 1e-6
    of the largest entry; the tolerance allows 100x that."""
    net = tiny_net(backend32, tokens=12).attach_adapters()
    generator = torch.Generator().manual_seed(0)  # not the global one: the rollouts must not depend on test order
    with torch.no_grad():  # non-zero adapters, so that each node's own adapter matters
        for name, param in net.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.02)
    config = TrainConfig(batch_size=3, group_size=4, micro_batch_rows=3, max_grad_norm=None)
    trainer = Trainer(net, HalfTiedTask(), config, progress=False)
    traces = trainer.rollout(0)
    batch = trainer.score(traces)
    needed = trainer._needed(batch.rows)
    assert 0 < len(needed) < len(batch.rows), "some rows (the tied group's) are skipped"
    finished = [m.finished for t in traces for m in t.messages.values()]
    assert len(trainer._chunks(batch.rows)) > 3 and any(finished) and not all(finished), finished
    reference = ReferenceStep(copy.deepcopy(net.backend.model), backend32.tokenizer, net.topology, trainer.task,
                              config.group_size, adapter_keys=net.backend.adapter_keys)

    losses = trainer.backward(batch.rows)
    ours = {n: p.grad for n, p in net.named_parameters() if p.grad is not None}
    rows = [Row(node, p, m.prompt_ids, m.token_ids, 1.0) for p, t in enumerate(traces) for node, m in t.messages.items()]
    reference_loss = reference.backward(rows, batch.rewards)
    theirs = {n: p.grad for n, p in lora.named_parameters(reference.model, net.backend.adapter_keys) if p.grad is not None}

    assert losses["finite"] and losses["loss/policy"] == pytest.approx(reference_loss, abs=1e-7)
    assert ours.keys() == theirs.keys() and len(ours) == 3 * 30 * 4 * 2  # 3 adapters x 30 layers x q,k,v,o x A,B
    scale = max(g.abs().max().item() for g in theirs.values())
    for name in theirs:
        torch.testing.assert_close(ours[name], theirs[name], atol=1e-4 * scale, rtol=0)


@pytest.mark.slow
def test_the_stop_token_is_learned(backend32):
    """A reward for finishing within the budget raises the probability of the stop token itself.

    Measured on the stop positions of 14 fixed sampled messages: 0.78 before, 0.94 / 0.94 / 0.94
    after steps 1-3; with the stop token left out of the trained tokens (the old behaviour),
    0.86 / 0.76 / 0.43: the reward rose all the same (shorter answers), the stop token did not.
    Two steps already tell the two apart (0.94 against 0.76, with the bar at 0.78 + 0.1), so the
    test takes two."""

    class OneWord(Task):
        name, answer_format = "one-word", "Reply with one word."

        def examples(self, split):
            return [Example(f"{split}{i}", f"Name {thing}.", None) for i, thing in
                    enumerate(["a colour", "an animal", "a fruit", "a city"])]

        def extract(self, completion, example=None):
            return completion

    net = tiny_net(backend32, layers=(1,), tokens=8)
    trainer = Trainer(net, OneWord(), TrainConfig(batch_size=4, group_size=8, lr=1e-2), progress=False)
    score = trainer.score

    def finished_pays(traces):
        for trace in traces:
            trace.reward = float(trace.messages["L1N1"].finished)
        return score(traces)

    trainer.score = finished_pays
    probe = [t.messages["L1N1"] for t in net(OneWord().examples("test"), num_samples=8, task=OneWord(), seed=123)]
    probe = [m for m in probe if m.finished]
    assert len(probe) >= 8

    @torch.no_grad()
    def p_stop() -> float:  # mean probability of the stop token where each probe message stopped
        stop_ids = backend32.stop_ids
        values = []
        for m in probe:
            ids = torch.tensor([m.prompt_ids + m.token_ids])
            logits = net.backend.model(input_ids=ids, **net.backend.adapter_kwargs(["L1N1"])).logits
            values.append(logits[0, -2].float().softmax(-1)[stop_ids].sum().item())
        return sum(values) / len(values)

    before = p_stop()
    for _ in range(2):
        trainer.train_step()
    assert p_stop() > before + 0.1


@pytest.mark.slow
def test_tree_rollouts_train_each_shared_message_once_with_its_layers_advantage(backend32):
    net = tiny_net(backend32)
    config = TrainConfig(steps=1, batch_size=2, group_size=4, lr=1e-2, branching=[2, 2], std_normalize=False)
    trainer = Trainer(net, LetterTask(), config, progress=False)
    traces = trainer.rollout(0)
    batch = trainer.score(traces)
    # per input: 2 first-layer samples of each of 2 nodes, and 4 readouts
    assert len(batch.rows) == 2 * (2 * 2 + 4)
    first = {id(t.messages["L1N1"]) for t in traces}
    assert len(first) == 4
    for b in range(2):
        rewards = batch.rewards[b].tolist()
        group = traces[4 * b: 4 * b + 4]
        assert group[0].messages["L1N1"] is group[1].messages["L1N1"] is not group[2].messages["L1N1"]
        expected_first = [(rewards[0] + rewards[1]) / 2 - sum(rewards) / 4, (rewards[2] + rewards[3]) / 2 - sum(rewards) / 4]
        expected_readout = [rewards[0] - (rewards[0] + rewards[1]) / 2, rewards[1] - (rewards[0] + rewards[1]) / 2,
                            rewards[2] - (rewards[2] + rewards[3]) / 2, rewards[3] - (rewards[2] + rewards[3]) / 2]
        # rows in pass order, a shared message at its first pass: L1N1 L1N2 L2N1 | L2N1 | L1N1 L1N2 L2N1 | L2N1
        rows = batch.rows.advantages[8 * b: 8 * b + 8].tolist()
        assert [rows[0], rows[1], rows[4], rows[5]] == pytest.approx([expected_first[0]] * 2 + [expected_first[1]] * 2)
        assert [rows[2], rows[3], rows[6], rows[7]] == pytest.approx(expected_readout)
    metrics = trainer.train_step()  # step 0 again, from the same adapters: the same samples
    assert metrics["tokens/total"] == sum(m.num_tokens for m in {id(m): m for t in traces for m in t.messages.values()}.values())
    assert metrics["grad/norm"] > 0


def test_update_kernels_run_attention_on_the_math_kernel_on_cuda_and_in_cpu_bf16():
    """Under warn_only the fused CUDA attention kernels keep a non-deterministic backward, and on
    the CPU the flash kernel's backward is slow for the update's short queries in bf16: there the
    update runs attention on the math kernel. CPU float32 keeps its kernels. (The backend switches
    are process-wide flags, so this runs without a GPU.)"""
    from neuromas.rl.trainer import update_kernels

    def kernels():
        b = torch.backends.cuda
        return b.flash_sdp_enabled(), b.mem_efficient_sdp_enabled(), b.cudnn_sdp_enabled(), b.math_sdp_enabled()

    before = kernels()
    assert before == (True, True, True, True)
    with update_kernels(torch.device("cuda", 0)):
        assert torch.are_deterministic_algorithms_enabled()
        assert kernels() == (False, False, False, True)
    with update_kernels("cpu", torch.bfloat16):
        assert torch.are_deterministic_algorithms_enabled()
        assert kernels() == (False, False, False, True)
    with update_kernels("cpu", torch.float32):
        assert torch.are_deterministic_algorithms_enabled()
        assert kernels() == before
    with update_kernels():
        assert kernels() == before
    assert kernels() == before and not torch.are_deterministic_algorithms_enabled()
