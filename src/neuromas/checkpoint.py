"""Saving and restoring networks and training state, atomically.

Everything is first written into a temporary sibling directory and then renamed into place, so
a crash (even `kill -9`) leaves either the previous complete checkpoint or the new complete one,
never a half-written directory that a resume would trust. Temporary directories left by a
crash are ignored and cleaned up. Every saved directory also ends with `SHA256SUMS` (files.py),
so a checkpoint damaged later (a file cut short, a flipped bit, a deleted optimizer state) is
refused in one line before anything is loaded from it, and a resume falls back to the newest
intact checkpoint (`newest_intact_checkpoint`).

    <dir>/network.yaml            network + model config (enough to rebuild the graph), and a
                                  grown network's fade-in state (grow.py) while it lasts
    <dir>/adapters/<name>/        one PEFT adapter per node (or per layer / one for all)
    <dir>/trainer.pt              (checkpoints only) optimizer, RNG states, step (the lr schedule is a function of the step)
    <dir>/run-config.yaml         (checkpoints only) the run's config.yaml as the run started: a resume
                                  refuses a config edited since
    <dir>/SHA256SUMS              every file's checksum, written last (`sha256sum -c SHA256SUMS` checks it)

The functions here take a `Network` (network.py) without importing it: this module sits below
the network, whose `save` and `load` call it (DESIGN.md section 7, layers import one way).
"""

from __future__ import annotations

import contextlib
import io
import logging
import random
import re
import shutil
from pathlib import Path

import yaml
from pydantic import ValidationError

from neuromas.config import ModelConfig, NetworkConfig, format_validation_error
from neuromas.errors import NeuromasError
from neuromas.fadein import Growth
from neuromas.files import CHECKSUMS, atomic_directory, disk_error, verify_checksums, write_checksums
from neuromas.topology import Topology

_STEP_DIR = re.compile(r"^step-(\d{6,})$")
RUN_CONFIG = "run-config.yaml"  # a checkpoint's copy of the run's config.yaml
log = logging.getLogger("neuromas")


def _write_network_files(net, directory: Path) -> None:
    spec = {"network": net.config.model_dump(mode="json"), "model": net.model_config.model_dump(mode="json")}
    if net.growth is not None:  # a grown network whose new nodes are still fading in (grow.py)
        spec["growth"] = net.growth.to_dict()
    (directory / "network.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    if net.adapters and not getattr(net.backend, "serves_adapters", False):  # else a server holds them
        net.backend.save_adapters(directory / "adapters")


def save_network(net, path: Path) -> None:
    with _writing(path), atomic_directory(path) as tmp:
        _write_network_files(net, tmp)
        write_checksums(tmp)


@contextlib.contextmanager
def _writing(path: Path):
    """A full disk, a read-only or forbidden directory: an OSError naming `path` (the directory
    being saved, not a file in its temporary twin, which the atomic block has already removed),
    whoever raised it: safetensors wraps the OSError of a failed write in its own error."""
    try:
        yield
    except Exception as error:
        found = disk_error(error, path)
        if found is None:
            raise
        raise found from error


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
    if (path / CHECKSUMS).is_file():  # saved networks without checksums predate them
        problem = verify_checksums(path, ("network.yaml",))
        if problem is not None:
            raise NeuromasError(f"{path}: {problem}; this saved network cannot be trusted")
    try:
        spec = yaml.safe_load(spec_file.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise NeuromasError(f"{spec_file}: unreadable ({type(error).__name__})") from None
    if not isinstance(spec, dict) or "network" not in spec or "model" not in spec:
        raise NeuromasError(f"{spec_file}: not a saved network (no network and model sections)")
    return spec


def saved_network_config(path: Path) -> NetworkConfig:
    """The network config a saved network (or checkpoint) was written with."""
    return _validated(NetworkConfig, _read_spec(path)["network"], path)


def _validated(model, data, path: Path):
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise NeuromasError(format_validation_error(error, str(path / "network.yaml"))) from None


def load_network(cls, path: Path, backend=None):
    path = _saved_dir(path)
    spec = _read_spec(path)
    config, model = _validated(NetworkConfig, spec["network"], path), _validated(ModelConfig, spec["model"], path)
    net = cls(config, model, backend=backend)
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
    saved = _validated(NetworkConfig, spec["network"], path)
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
def save_checkpoint(run_dir: Path, step: int, net, trainer_state: dict, keep: int,
                    run_config: str | None = None) -> Path:
    """`run_config`: the text of the run's config.yaml as the run started (kept to refuse a
    resume after it was edited)."""
    import torch  # imported when a checkpoint is written, so that `neuromas show` never loads torch

    final = run_dir / "checkpoints" / f"step-{step:06d}"
    with _writing(final), atomic_directory(final) as tmp:
        _write_network_files(net, tmp)
        state = {
            **trainer_state,
            "step": step,
            "rng": {"torch": torch.get_rng_state(), "python": random.getstate()},
        }
        buffer = io.BytesIO()  # torch's own file writer reports a full disk as a RuntimeError without errno
        torch.save(state, buffer)
        (tmp / "trainer.pt").write_bytes(buffer.getbuffer())
        if run_config is not None:
            (tmp / RUN_CONFIG).write_text(run_config, encoding="utf-8")
        write_checksums(tmp)
    for old in checkpoints(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def checkpoints(run_dir: Path) -> list[Path]:
    """Checkpoint directories, oldest first (temporary directories of crashed saves are removed);
    whether one is intact is `checkpoint_problem`'s question."""
    root = run_dir / "checkpoints"
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if _STEP_DIR.match(p.name) and p.is_dir()]
    for leftover in [*root.glob(".step-*.tmp-*"), *root.glob(".step-*.old-*")]:  # a crash mid-save
        shutil.rmtree(leftover, ignore_errors=True)
    return sorted(found, key=lambda p: int(_STEP_DIR.match(p.name).group(1)))


def checkpoint_problem(directory: Path) -> str | None:
    """Why a checkpoint cannot be trusted, in a few words; None when it is intact."""
    if not (directory / CHECKSUMS).is_file() and (directory / "trainer.pt").is_file():
        return "no checksums"  # written before checkpoints had them (or SHA256SUMS was deleted)
    return verify_checksums(directory, ("network.yaml", "trainer.pt"))


def config_change(directory: Path, run_config: str | None) -> str | None:
    """How the run's config.yaml differs from the one a checkpoint was written under (the first
    differing key, old and new value); None when they agree or either is unknown. `train.steps`
    may change: a finished run trains on by raising it (benchmarks/claims.py `--extend`)."""
    saved_file = directory / RUN_CONFIG
    if run_config is None or not saved_file.is_file():
        return None
    try:
        saved, now = yaml.safe_load(saved_file.read_text(encoding="utf-8")), yaml.safe_load(run_config)
    except (yaml.YAMLError, UnicodeDecodeError):
        return "config.yaml is no longer valid YAML"
    for config in (saved, now):  # raising train.steps is how a finished run is trained on (`--extend`)
        if isinstance(config, dict) and isinstance(config.get("train"), dict):
            config["train"].pop("steps", None)
    return _first_difference(saved, now)


def _first_difference(old, new, where: str = "") -> str | None:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in [*old, *(k for k in new if k not in old)]:
            found = _first_difference(old.get(key, "(absent)"), new.get(key, "(absent)"), f"{where}.{key}".lstrip("."))
            if found:
                return found
        return None
    return None if old == new else f"{where or '(top level)'}: {old!r} when the run started, {new!r} now"


def newest_intact_checkpoint(run_dir: Path, run_config: str | None = None, quiet: bool = False) -> Path | None:
    """The checkpoint a resume continues from: the newest intact one, each newer one refused in one
    logged line (none with `quiet`: a check before the model loads, runner.py). Checkpoints without
    checksums (older runs) are used only when no checked one is intact. None when the run has no
    checkpoint; a NeuromasError when it has some but none is intact, or when config.yaml was
    edited since the run started."""
    found = checkpoints(run_dir)
    if not found:
        return None
    change = config_change(found[-1], run_config)
    if change is not None:
        raise NeuromasError(f"{run_dir / 'config.yaml'} was edited after the run started ({change}); put the "
                            f"original back (the checkpoint keeps it: {found[-1] / RUN_CONFIG}) or start a new run")
    unchecked, refused = [], []
    for directory in reversed(found):
        problem = checkpoint_problem(directory)
        if problem is None:
            for name, why in [] if quiet else refused:
                log.warning("checkpoint %s refused (%s); resuming from %s", name, why, directory.name)
            return directory
        refused.append((directory.name, problem))
        if problem == "no checksums":
            unchecked.append(directory)
    if unchecked:  # no checked checkpoint is intact: an older run's are used as they are
        if not quiet:
            log.warning("checkpoint %s has no checksums (saved by an older neuromas); resuming from it unchecked",
                        unchecked[0])
        return unchecked[0]
    raise NeuromasError(f"no intact checkpoint in {run_dir / 'checkpoints'} "
                        f"({'; '.join(f'{name}: {why}' for name, why in refused)}); "
                        "restore one, or delete the checkpoints directory to train again from the start")


def load_checkpoint(directory: Path, net) -> dict:
    """Restore adapters and RNG states; return the trainer state (its step fixes every later seed)."""
    import torch

    load_adapter_weights(net, directory)
    _load_growth(net, _read_spec(directory))
    try:
        state = torch.load(directory / "trainer.pt", weights_only=False)
    except Exception as error:  # noqa: BLE001 - an unchecked (older) checkpoint's file may be anything
        raise NeuromasError(f"{directory / 'trainer.pt'}: unreadable ({type(error).__name__}); "
                            "delete this checkpoint to resume from an older one") from None
    torch.set_rng_state(state["rng"]["torch"])
    random.setstate(state["rng"]["python"])
    return state
