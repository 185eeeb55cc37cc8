"""The lab's stand-in control plane (issue 10): today its Kubernetes API server."""
