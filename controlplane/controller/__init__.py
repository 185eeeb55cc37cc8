"""tulle-controller (``python -m controlplane.controller``): the Gateway API status, Ingress and
LoadBalancer pool controllers, run only by the replica that holds the leader election Lease
(``controlplane.leader``); ``status`` is its loop. The lab's controller process contends for
the same Lease (lab/controllers/manager.py), so the two never write status at once."""

LEASE_NAME = "tulle-controller"  # in the system namespace (identity/system.py)
ACCOUNT = "tulle-controller"  # its ServiceAccount (deploy/controller/rbac.yaml)
FIELD_MANAGER = "tulle-controller"
