"""`make bench-l4`: Tulle's eBPF ClusterIP path against direct pod IPs and kube-proxy-style
iptables (issue 3, "Benchmark"), and its NodePort path from the lab's external client against
kube-proxy's NodePort chains (issue 15), side by side in lab network namespaces."""
