"""tulle-controller (``python -m controlplane.controller``): the Gateway API status, Ingress and
LoadBalancer pool controllers, run only by the replica that holds the leader election Lease
(``controlplane.leader``); ``status`` is its loop."""
