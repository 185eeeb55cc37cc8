"""`make bench-l4`: Tulle's eBPF ClusterIP path against direct pod IPs and kube-proxy-style
iptables, side by side in lab network namespaces (issue 3, "Benchmark")."""
