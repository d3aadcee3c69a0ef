"""Saving and restoring networks and training state, atomically.

Everything is first written into a temporary sibling directory and then renamed into place, so
a crash (even `kill -9`) leaves either the previous complete checkpoint or the new complete one,
never a half-written directory that a resume would trust. Temporary directories left by a
crash are ignored and cleaned up.

    <dir>/network.yaml            network + model config (enough to rebuild the graph), and a
                                  grown network's fade-in state (grow.py) while it lasts
    <dir>/adapters/<name>/        one PEFT adapter per node (or per layer / one for all)
    <dir>/trainer.pt              (checkpoints only) optimizer, RNG states, step (the lr schedule is a function of the step)

The functions here take a `Network` (network.py) without importing it: this module sits below
the network, whose `save` and `load` call it (DESIGN.md section 7, layers import one way).
"""

from __future__ import annotations

import random
import re
import shutil
from pathlib import Path

import yaml

from neuromas.config import ModelConfig, NetworkConfig
from neuromas.errors import NeuromasError
from neuromas.fadein import Growth
from neuromas.files import atomic_directory
from neuromas.topology import Topology

_STEP_DIR = re.compile(r"^step-(\d{6,})$")


def _write_network_files(net, directory: Path) -> None:
    spec = {"network": net.config.model_dump(mode="json"), "model": net.model_config.model_dump(mode="json")}
    if net.growth is not None:  # a grown network whose new nodes are still fading in (grow.py)
        spec["growth"] = net.growth.to_dict()
    (directory / "network.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    if net.adapters and not getattr(net.backend, "serves_adapters", False):  # else a server holds them
        net.backend.save_adapters(directory / "adapters")


def save_network(net, path: Path) -> None:
    with atomic_directory(path) as tmp:
        _write_network_files(net, tmp)


def load_adapter_weights(net, directory: Path) -> None:
    """Load each adapter's saved weights into the network's (already attached) adapters."""
    for name in sorted(set(net.adapters.values())):
        file = directory / "adapters" / name / "adapter_model.safetensors"
        if not file.is_file():
            raise NeuromasError(f"{directory}: adapter {name} is missing ({file} not found)")
        unexpected = net.backend.load_adapter(name, file)
        if unexpected:
            raise NeuromasError(f"{file}: does not match this network's adapters ({unexpected[0]} ...)")


def _saved_dir(path: Path) -> Path:
    """A saved network's directory: `path` itself, or a run directory's `final/`."""
    return path / "final" if (path / "final" / "network.yaml").is_file() else path


def _read_spec(path: Path) -> dict:
    spec_file = path / "network.yaml"
    if not spec_file.is_file():
        raise NeuromasError(f"{path}: no saved network here (network.yaml not found)")
    return yaml.safe_load(spec_file.read_text())


def saved_network_config(path: Path) -> NetworkConfig:
    """The network config a saved network (or checkpoint) was written with."""
    return NetworkConfig.model_validate(_read_spec(path)["network"])


def load_network(cls, path: Path, backend=None):
    path = _saved_dir(path)
    spec = _read_spec(path)
    net = cls(NetworkConfig.model_validate(spec["network"]), ModelConfig.model_validate(spec["model"]), backend=backend)
    if (path / "adapters").is_dir():
        net.attach_adapters()
        if not getattr(net.backend, "serves_adapters", False):  # else the server holds the weights
            load_adapter_weights(net, path)
    _load_growth(net, spec)
    return net


def _load_growth(net, spec: dict) -> None:
    net.growth = Growth.from_dict(spec["growth"]) if spec.get("growth") else None


def init_from(net, path: Path) -> None:
    """Give `net` the adapters (and fade-in state) of a saved network of the same shape."""
    path = _saved_dir(path)
    spec = _read_spec(path)
    saved = NetworkConfig.model_validate(spec["network"])
    shape = Topology.from_config(saved)  # sampling settings may differ; the graph and adapters may not
    if (shape.widths, shape.edges, saved.adapters) != (net.topology.widths, net.topology.edges, net.config.adapters):
        raise NeuromasError(f"init_from: {path} holds a different network (widths {shape.widths}, its edges and "
                            f"adapters); set network to the one in {path / 'network.yaml'}")
    if not (path / "adapters").is_dir():
        raise NeuromasError(f"init_from: {path} has no adapters to start from (an untrained network)")
    net.attach_adapters()
    load_adapter_weights(net, path)
    _load_growth(net, spec)


# training checkpoints ---------------------------------------------------------------------
def save_checkpoint(run_dir: Path, step: int, net, trainer_state: dict, keep: int) -> Path:
    import torch  # imported when a checkpoint is written, so that `neuromas show` never loads torch

    final = run_dir / "checkpoints" / f"step-{step:06d}"
    with atomic_directory(final) as tmp:
        _write_network_files(net, tmp)
        state = {
            **trainer_state,
            "step": step,
            "rng": {"torch": torch.get_rng_state(), "python": random.getstate()},
        }
        torch.save(state, tmp / "trainer.pt")
    for old in checkpoints(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first (temporary directories of crashed saves are skipped)."""
    root = run_dir / "checkpoints"
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if _STEP_DIR.match(p.name) and (p / "trainer.pt").is_file()]
    for leftover in [*root.glob(".step-*.tmp-*"), *root.glob(".step-*.old-*")]:  # a crash mid-save
        shutil.rmtree(leftover, ignore_errors=True)
    return sorted(found, key=lambda p: int(_STEP_DIR.match(p.name).group(1)))


def load_checkpoint(directory: Path, net) -> dict:
    """Restore adapters and RNG states; return the trainer state (its step fixes every later seed)."""
    import torch

    load_adapter_weights(net, directory)
    _load_growth(net, _read_spec(directory))
    state = torch.load(directory / "trainer.pt", weights_only=False)
    torch.set_rng_state(state["rng"]["torch"])
    random.setstate(state["rng"]["python"])
    return state
