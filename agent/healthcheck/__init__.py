"""Health-check node ports: what an external load balancer asks a node about a
LoadBalancer Service with ``externalTrafficPolicy: Local`` (kube-proxy's healthcheck server)."""
