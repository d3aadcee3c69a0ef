"""Every bundled config validates: a typo in a shipped file must fail here, not in a user's run."""

from pathlib import Path

import pytest

from neuromas.configfile import load_config
from neuromas.topology import Topology

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").rglob("*.yaml"))


def test_configs_are_found():
    assert len(CONFIGS) >= 30


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(p.parents[1])))
def test_bundled_config_validates(path):
    config = load_config(path)
    assert Topology.from_config(config.network).readout


def test_train_compare_arms_share_one_recipe():
    """benchmarks/train_compare.py compares arms: they may differ only in network and budget."""
    for task in ("arith", "navigate"):
        arms = [load_config(path) for path in CONFIGS if path.parent.name == "configs" and path.stem.startswith(f"{task}-")]
        assert len(arms) == 3
        assert len({arm.train.model_dump_json() for arm in arms}) == 1
        assert len({arm.task.model_dump_json() for arm in arms}) == 1
        assert len({arm.network.generation.model_dump_json() for arm in arms}) == 1
        ranks = {len(arm.network.layers): arm.network.adapters.rank for arm in arms}
        assert ranks[1] == 3 * ranks[2] == 3 * ranks[3]  # the single node gets the 3 nodes' budget
