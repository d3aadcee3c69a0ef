"""A run's config read and checked whole: YAML, `--set` overrides, the schema, the graph, the schedule.

`config.py` is the schema alone; this module adds the checks that need more than one field:
the topology (`Topology.from_config`: cycles, dead nodes, an ambiguous readout) and the growth
schedule (`plan_schedule`: every growth fits the shape the ones before it leave). So a bad file
fails in one line, before any model is loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from neuromas.config import RunConfig, format_validation_error
from neuromas.errors import NeuromasError
from neuromas.plan import plan_schedule
from neuromas.topology import Topology

MAX_CONFIG_BYTES = 1 << 20


def parse_config(data: dict[str, Any], source: str = "config") -> RunConfig:
    """Validate a config dict, including the topology, or raise a one-line NeuromasError."""
    if not isinstance(data, dict):
        raise NeuromasError(f"{source}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        config = RunConfig.model_validate(data)
    except ValidationError as error:
        raise NeuromasError(format_validation_error(error, source)) from None
    topology = Topology.from_config(config.network)  # raises NeuromasError for impossible graphs
    nodes, depth = {n.id for n in topology.nodes}, len(topology.layers)
    if config.train.branching is not None and len(config.train.branching) != depth:
        raise NeuromasError(f"{source}: train.branching {config.train.branching} needs one factor per layer of the "
                            f"network ({depth} layers)")
    if config.train.growth:
        try:  # every growth must fit the shape the ones before it leave
            plans = plan_schedule(config.network, config.train.growth)
        except NeuromasError as error:
            raise NeuromasError(f"{source}: train.{error}") from None
        for k, (stage, plan) in enumerate(zip(config.train.growth, plans)):
            grown = Topology.from_config(plan.config)
            nodes |= {n.id for n in grown.nodes}
            if stage.branching is not None and len(stage.branching) != len(grown.layers):
                raise NeuromasError(f"{source}: train.growth[{k}].branching {stage.branching} needs one factor per "
                                    f"layer of the grown network ({len(grown.layers)} layers)")
    unknown = [n for n in config.train.freeze if n not in nodes]
    if unknown:
        raise NeuromasError(f"{source}: train.freeze: {unknown[0]} is not a node of this network "
                            f"({', '.join(sorted(nodes))})")
    return config


def load_config(path: str | Path, overrides: list[str] | None = None) -> RunConfig:
    """Read a YAML config, apply `key.sub=value` overrides, validate everything up front."""
    path = Path(path)
    if not path.is_file():
        raise NeuromasError(f"config file not found: {path}")
    if path.stat().st_size > MAX_CONFIG_BYTES:  # YAML parses at about 1 MB/s: a huge file would hang for minutes
        raise NeuromasError(f"{path}: {path.stat().st_size / 2**20:.1f} MB is not a config (the limit is "
                            f"{MAX_CONFIG_BYTES >> 20} MB); give the YAML config file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as error:
        raise NeuromasError(f"{path}: not a UTF-8 text file (byte {error.start}); give a YAML config") from None
    except yaml.YAMLError as error:
        raise NeuromasError(f"{path}: not valid YAML ({yaml_problem(error)})") from None
    except RecursionError:
        raise NeuromasError(f"{path}: nested too deeply to be a config") from None
    if overrides and not isinstance(data, dict):
        raise NeuromasError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    for override in overrides or []:
        apply_override(data, override)
    return parse_config(data, source=str(path))


def yaml_problem(error: yaml.YAMLError) -> str:
    """What is wrong and where, in a few words. A ReaderError (a NUL or other control byte) has
    no `problem`, only its own text; a MarkedYAMLError has both."""
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    mark = getattr(error, "problem_mark", None)
    return f"{problem} at line {mark.line + 1}" if mark is not None else problem


def apply_override(data: dict[str, Any], override: str) -> None:
    """Set `a.b.c=value` in a nested dict; the value is parsed as YAML (so [1, 1, 1] is a list)."""
    key, sep, raw = override.partition("=")
    if not sep or not key:
        raise NeuromasError(f"override {override!r}: write it as key.path=value, e.g. network.layers=[1,1,1]")
    *parents, leaf = key.strip().split(".")
    node = data
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise NeuromasError(f"override {override!r}: {part} is not a section")
    try:
        node[leaf] = yaml.safe_load(raw)
    except yaml.YAMLError as error:
        raise NeuromasError(f"override {override!r}: the value is not valid YAML ({yaml_problem(error)})") from None
