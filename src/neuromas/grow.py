"""Growth: a bigger network made from a trained smaller one, starting where the smaller one is.

The paper finds that big networks trained from scratch train badly, and that the same shapes
grown from a trained smaller network train well (DESIGN.md section 1, Growth). Two operators,
torch-style functions that return a new network and leave the old one usable:

    bigger = nm.grow.widen(net, layer=1, width=2)            # [1, 1, 1] -> [2, 1, 1]
    bigger = nm.grow.deepen(net5, after_layer=2, width=2)     # [2, 2, 1] -> [2, 2, 2, 1]

Layers count from 1, as in node ids (layer 1 holds `L1N1`), prompts and errors.

Both plan the new graph first (`plan_widen`, `plan_deepen` in plan.py: pure functions of the
config, also used to check a run's growth schedule when its config loads) and then `apply` the
plan. The fade-in state a grown network carries (`Growth`) lives in fadein.py.

Trained nodes keep their adapters bit for bit (renamed when a layer is inserted before them:
`L2N1` becomes `L3N1`). A new node's adapter starts as a copy of a trained node's (`init:
"clone"`, default: a sibling in its layer for `widen`, the node at the same index of the layer
below for `deepen`) or fresh, i.e. the base model (`"fresh"`).

**How the new parts start with no effect: a fade-in.** A text message cannot be scaled by a
weight that starts at 0, and a message hidden from its readers never changes the reward, so it
would get no learning signal. So the grown network keeps its parent as a second form: each
sampled pass runs the grown network with probability `alpha` and otherwise exactly the parent
(its nodes, prompts and node names, with the trained adapters). `alpha` rises linearly from 0 to
1 over `ramp_steps` training steps (like the fade-in of progressively grown GANs). At alpha = 0
the grown network *is* the parent; while alpha rises, the G passes of one input mix both forms,
so the group baseline credits the new nodes with whatever they add over the parent (tree
rollouts draw the form per first-layer sample, and compare those samples' subtrees). Greedy
evaluation runs the form most training passes use (the grown one once alpha >= 0.5). When the
ramp is done the parent is dropped. `ramp_steps: 0` switches the grown network on at once.
"""

from __future__ import annotations

from typing import Literal

from neuromas.errors import NeuromasError
from neuromas.fadein import Growth
from neuromas.network import Network
from neuromas.plan import Plan, plan_deepen, plan_schedule, plan_stage, plan_widen

__all__ = ["Growth", "Init", "Plan", "apply", "deepen", "plan_deepen", "plan_schedule", "plan_stage", "plan_widen",
           "widen"]

Init = Literal["clone", "fresh"]


def widen(net: Network, layer: int, width: int, init: Init = "clone", ramp_steps: int = 10) -> Network:
    """`net` with layer `layer` (counted from 1) widened to `width` nodes, appended after the old ones."""
    return apply(net, plan_widen(net.config, layer, width), init, ramp_steps)


def deepen(net: Network, after_layer: int, width: int = 1, init: Init = "clone", ramp_steps: int = 10,
           fan_in: int | None = None, keep_edges: bool = False) -> Network:
    """`net` with a new layer of `width` nodes inserted after layer `after_layer` (counted from 1),
    dense or each node reading `fan_in` nodes of that layer (1: one-to-one); the nodes after
    it are renamed (`Plan.renamed`) and, with `keep_edges`, still read that layer by skip edges."""
    return apply(net, plan_deepen(net.config, after_layer, width, fan_in, keep_edges), init, ramp_steps)


def apply(net: Network, plan: Plan, init: Init = "clone", ramp_steps: int = 10) -> Network:
    """The grown network of `plan`, each node with its adapter: kept, renamed, cloned or fresh."""
    if init not in ("clone", "fresh"):
        raise NeuromasError(f"init={init!r}: use 'clone' or 'fresh'")
    if ramp_steps < 0:
        raise NeuromasError(f"ramp_steps={ramp_steps} must be >= 0")
    if not net.adapters:
        raise NeuromasError("grow a trained network: this one has no adapters (train it or load a run first)")
    if net.growth is not None:
        raise NeuromasError("this network is still fading in its last growth; train it ramp_steps more steps first")
    grown = Network(plan.config, model=net.model_config, backend=net.base_backend, seed=net.seed)
    grown.attach_adapters()
    copies: dict[str, str] = {}  # grown adapter name -> parent adapter name whose weights it takes
    for node in grown.topology.nodes:
        source = plan.old_ids.get(node.id) or (plan.sources[node.id] if init == "clone" else None)
        if source is not None:
            copies.setdefault(grown.adapters[node.id], net.adapters[source])
    _copy_adapters(net, grown, copies)
    # ramp_steps 0: the grown network runs from the first pass, so it keeps no parent form (and a
    # tree of samples, which a pass of either form could not share, stays possible)
    grown.growth = Growth(net.config, dict(plan.old_ids), ramp_steps) if ramp_steps else None
    return grown


def _copy_adapters(source: Network, target: Network, copies: dict[str, str]) -> None:
    for target_name, source_name in copies.items():
        target.backend.copy_adapter(target_name, source.backend, source_name)
