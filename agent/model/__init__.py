"""The typed model: frozen dataclasses for the Kubernetes and Gateway API kinds Tulle reads.

- ``meta``, ``core``, ``apps``, ``networking``, ``gateway``, ``httproute``: the model types;
  ``resource.Resource`` is their union.
- ``kinds``: the kind registry and ``resolve_kind`` for user-typed names.
- ``convert``: the one converter, ``from_dict`` / ``to_dict``, plus manifest loading
  (``load_documents``, ``load_sources``).
"""
