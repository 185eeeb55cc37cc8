"""LoadBalancerIPPool: blocks read and refused as the reader says."""

import pytest

from agent.model.convert import ConversionError, from_dict, to_dict
from agent.model.kinds import resolve_kind


def _pool(*blocks, **spec):
    return {"apiVersion": "networking.tulle.io/v1alpha1", "kind": "LoadBalancerIPPool",
            "metadata": {"name": "p", "namespace": "ignored"}, "spec": {"blocks": list(blocks), **spec}}


def test_cidr_and_range_blocks_round_trip_and_are_cluster_scoped():
    pool = from_dict(_pool({"cidr": "10.0.0.0/30"}, {"start": "10.0.1.5", "stop": "10.0.1.9"},
                           serviceSelector={"matchLabels": {"lb": "yes"}}))
    assert pool.metadata.namespace == ""
    assert [b.bounds() for b in pool.spec.blocks] == [(0x0A000001, 0x0A000002), (0x0A000105, 0x0A000109)]
    assert pool.spec.service_selector.matches({"lb": "yes"})
    assert from_dict(to_dict(pool)) == pool
    assert resolve_kind("lbippool").kind == "LoadBalancerIPPool"


@pytest.mark.parametrize(
    ("blocks", "path", "message"),
    [
        ([], "spec.blocks", ""),
        ([{"cidr": "fd00::/120"}], "spec.blocks[0].cidr", "IPv6 is not supported"),
        ([{"start": "fd00::1"}], "spec.blocks[0].start", "IPv6 is not supported"),
        ([{"cidr": "10.0.0.1/24"}], "spec.blocks[0].cidr", "invalid CIDR"),
        ([{"start": "10.0.0.9", "stop": "10.0.0.1"}], "spec.blocks[0].stop", "below start"),
        ([{"stop": "10.0.0.1"}], "spec.blocks[0]", "needs a cidr or a start"),
        ([{"cidr": "10.0.0.0/28", "start": "10.0.0.1"}], "spec.blocks[0]", "not both"),
        ([{"start": "banana"}], "spec.blocks[0].start", "invalid IP address"),
        ([{"cidr": "10.0.0.0/28"}, {"start": "10.0.0.14"}], "spec.blocks[1]", "overlaps blocks[0]"),
    ],
)
def test_bad_blocks_are_refused_by_field(blocks, path, message):
    with pytest.raises(ConversionError) as err:
        from_dict(_pool(*blocks))
    assert err.value.path == path
    assert message in err.value.message
