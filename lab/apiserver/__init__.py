"""A Kubernetes-compatible API server in front of the lab's store (the lab's etcd).

``python -m lab.apiserver --store FILE --state-dir DIR`` serves HTTPS on loopback and writes
a kubeconfig; see README.md in this folder for what works.
"""
