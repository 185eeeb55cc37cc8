"""Tulle's chained CNI plugin (``tulle-cni``): runs after the cluster's CNI and tells the node
agent about each pod (see cni/README.md).

The plugin is exec'd once per pod operation, so it imports only the standard library and,
for ADD and CHECK alone, pyroute2; never the agent, the lab or the waypoint (import-linter).
"""
