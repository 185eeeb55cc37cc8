"""The node's workload certificates (issue 11): what the agent fetches and the waypoint uses."""
