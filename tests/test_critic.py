"""CoLLM-CC (`train.algorithm: collm-cc`, rl/critic.py): what the critic sees, and a tiny real run
in which its value loss falls while every node's adapter trains."""

import pytest
import torch

from neuromas.configfile import load_config
from neuromas.errors import NeuromasError
from neuromas.eval import evaluate
from neuromas.rl.critic import critic_inputs, layer_of
from neuromas.rl.trainer import Trainer
from neuromas.trace import NodeMessage, Trace
from test_trainer import LetterTask, lora_b, tiny_net


def message(node, text):
    return NodeMessage(node, "prompt", text, [1], [0.0])


def test_each_layer_is_valued_on_the_input_and_the_layers_before_it():
    trace = Trace("q", "What is 2+3?", 0, {"L1N1": message("L1N1", "five"), "L1N2": message("L1N2", "5"),
                                            "L2N1": message("L2N1", "sum 5"), "L2N2": message("L2N2", "x"),
                                            "L3N1": message("L3N1", "Answer: 5")}, "Answer: 5")
    inputs = critic_inputs(trace)
    assert inputs[1] == "Task: What is 2+3?\n"  # the same for every pass of one input
    assert inputs[2] == "Task: What is 2+3?\n\n[L1N1] five\n[L1N2] 5"
    assert inputs[3] == inputs[2] + "\n[L2N1] sum 5\n[L2N2] x"  # never a layer's own messages
    assert [layer_of(n) for n in ("L1N2", "L12N3")] == [1, 12]
    single = Trace("q", "What is 2+3?", 0, {"L1N1": message("L1N1", "Answer: 5")}, "Answer: 5")
    assert critic_inputs(single) == {1: "Task: What is 2+3?\n"}  # one node: a learned per-input baseline


def test_the_algorithm_is_validated_in_one_line():
    config = load_config("configs/baselines/arith-collm-cc.yaml")
    assert config.train.algorithm == "collm-cc" and [layer.width for layer in config.network.layers] == [1, 1, 1]
    with pytest.raises(NeuromasError) as error:
        load_config("configs/baselines/arith-collm-cc.yaml", ["train.algorithm=ppo"])
    assert "\n" not in str(error.value) and "reinforce" in str(error.value)


@pytest.mark.slow
def test_collm_cc_trains_every_node_and_the_critic_value_loss_falls(backend32):
    from neuromas.config import TrainConfig

    net = tiny_net(backend32, layers=(2, 1))
    config = TrainConfig(steps=2, batch_size=2, group_size=4, lr=1e-2, algorithm="collm-cc", critic_lr=5e-3)
    trainer = Trainer(net, LetterTask(), config, progress=False)
    before = {a: lora_b(net, a) for a in ("L1N1", "L1N2", "L2N1")}
    critic_before = [p.detach().clone() for p in trainer.critic.params]
    metrics = trainer.train_step()
    assert metrics["critic/value_loss"] > 0 and metrics["critic/value_mean"] == 0.0  # V starts at 0
    for adapter, weights in before.items():  # every actor trained on the critic's advantages
        assert any(not torch.equal(w, lora_b(net, adapter)[n]) for n, w in weights.items()), adapter
    assert any(not torch.equal(a, b) for a, b in zip(critic_before, trainer.critic.params))
    # the critic's adapter is its own: not one of the network's, and not in the actors' optimizer
    assert trainer.critic.ADAPTER not in net.adapters.values()
    assert not {id(p) for p in trainer.critic.params} & {id(p) for p in trainer.params}
    # fitting the same passes again and again, the value loss falls
    traces = trainer.rollout(1)
    rewards = torch.tensor([t.reward for t in traces])
    losses = [trainer.critic.step(traces, rewards)[1]["critic/value_loss"] for _ in range(4)]
    assert losses[-1] < losses[0], losses
    advantages, _ = trainer.critic.step(traces, rewards, normalize=False)
    assert set(advantages) == {(p, layer) for p in range(len(traces)) for layer in (1, 2)}
    state = trainer.state_dict()["critic"]  # checkpoints carry the critic
    assert set(state) == {"adapter", "head", "optimizer"}
    result = evaluate(net, LetterTask(), limit=2, progress=False)  # the trained network evaluates as any other
    assert result.n == 2 and result.calls_per_q == 3
