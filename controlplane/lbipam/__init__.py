"""LoadBalancer IPAM: addresses for LoadBalancer Services and Tulle's Gateways from
LoadBalancerIPPools (pure; ``allocate``), and the status each object should then carry
(pure; ``plan``). The lab's controller runs it today (``lab/controllers/loadbalancer.py``);
it imports nothing of the lab, so the tulle-controller Deployment can run it as is."""

from controlplane.lbipam.allocate import Allocation, Claim, allocate
from controlplane.lbipam.plan import LOAD_BALANCER_CLASS, Plan, plan, requested_address

__all__ = ["LOAD_BALANCER_CLASS", "Allocation", "Claim", "Plan", "allocate", "plan",
           "requested_address"]
