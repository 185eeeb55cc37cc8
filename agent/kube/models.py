"""An informer transform (pure): keep a kind's objects as agent.model objects, not dicts.

The agent's datapath reads Services and EndpointSlices only as models; holding the
informer's raw dicts beside them cost ~80 MB at 10,000 Services and 100,000 endpoints
(bench/results/control-*-firstsync.md). An object the converter refuses stays a dict: the
datapath's ModelCache logs it and counts it as absent, as before.
"""

from __future__ import annotations

from typing import Any

from agent.model.convert import ConversionError, from_dict


def to_model(obj: Any) -> Any:
    try:
        return from_dict(obj)
    except ConversionError:
        return obj
