"""An informer transform (pure): keep a kind's objects as agent.model objects, not dicts.

The agent's datapath reads Services and EndpointSlices only as models; holding the
informer's raw dicts beside them cost ~80 MB at 10,000 Services and 100,000 endpoints
(bench/results/control-*-firstsync.md). An object the converter refuses stays a dict: the
datapath's ModelCache logs it and counts it as absent, as before.

``to_model.decode_page`` is the informer's fast path for a list page of those kinds
(agent.model.convert_fast: the JSON straight to models, ~4x less CPU); what it leaves out
comes through ``to_model`` as a dict.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agent.model.convert_fast import Page, decode_page


class ModelTransform:
    def __call__(self, obj: Any) -> Any:
        if not isinstance(obj, Mapping):  # a model already (from decode_page)
            return obj
        # Imported on first use (every kind's converter, ~30 ms): not before the lists start,
        # whose pages decode_page reads.
        from agent.model.convert import ConversionError, from_dict

        try:
            return from_dict(obj)
        except ConversionError:
            return obj

    def decode_page(self, kind: str, raw: bytes) -> Page | None:
        return decode_page(kind, raw)


to_model = ModelTransform()
