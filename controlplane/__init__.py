"""Tulle's control plane (the control-plane Deployment): today the identity service, which
signs X.509-SVIDs for node agents (controlplane/README.md)."""
