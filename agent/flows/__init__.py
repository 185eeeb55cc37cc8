"""Flow records, their Hubble-compatible JSON, filters, printers, the flow ring and enrichment.

Import order matters only here: `flow` is imported first so that `flow`, `codec` and
`fromjson` (which import each other's names) initialise in a fixed order.
"""

from agent.flows.flow import Flow, LostEvent, flow_from_json, flow_to_json, summarize

__all__ = ["Flow", "LostEvent", "flow_from_json", "flow_to_json", "summarize"]
