"""Leader election through a coordination.k8s.io/v1 Lease, as client-go's: ``election``
(pure decisions over a passed-in clock), ``lease`` (the API calls), ``runner`` (the loop)."""

from controlplane.leader.election import ElectionConfig, ElectionConfigError, Elector, LeaseRecord
from controlplane.leader.lease import KubeLeases, Leases, LostRace
from controlplane.leader.runner import LeaderElection

__all__ = [
    "ElectionConfig", "ElectionConfigError", "Elector", "KubeLeases", "LeaderElection",
    "LeaseRecord", "Leases", "LostRace",
]
