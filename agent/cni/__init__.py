"""The agent's side of Tulle's chained CNI plugin: the registry of pod attachments that
``tulle-cni`` records on the node (format: ``cni.record``)."""
