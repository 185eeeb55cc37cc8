"""The Service of type LoadBalancer tulle-controller keeps for each of Tulle's Gateways (pure:
``plan``); ``lab/controllers/gatewayservices.py`` writes what it plans."""

from controlplane.gatewayservice.plan import ServicePlan, desired_service, plan

__all__ = ["ServicePlan", "desired_service", "plan"]
