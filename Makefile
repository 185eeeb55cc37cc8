# Tulle: `make demo` and `make test` do all the set-up they need (see scripts/setup.sh).
SHELL := /bin/bash
VENV  := .venv
PY    := $(VENV)/bin/python
TULLE := $(VENV)/bin/tulle

.PHONY: setup demo test test-unit test-root lint down clean image conformance

setup:
	@bash scripts/setup.sh

demo: setup
	@bash scripts/demo.sh

# Unit tier first (fast, no root), then the root tiers (netns, bpf). Under CI=true a
# skipped root test fails the run: see tests/conftest.py.
test: setup
	@$(PY) -m pytest tests -m "not root and not netns and not bpf" -q
	@$(PY) -m pytest tests -m "root or netns or bpf" -q
	@$(MAKE) --no-print-directory lint

test-unit: setup
	@$(PY) -m pytest tests -m "not root and not netns and not bpf" -q

test-root: setup
	@$(PY) -m pytest tests -m "root or netns or bpf" -q

lint: setup
	@$(VENV)/bin/ruff check agent authz cni conformance controlplane gatewayapi identity l7proxy lab bench tests
	@$(VENV)/bin/mypy agent authz cni conformance controlplane gatewayapi identity l7proxy lab
	@$(VENV)/bin/lint-imports --no-cache

# Gateway API conformance (issue 16 item 8; conformance/README.md): the cases against a lab of
# its own (`ARGS="--lab NAME"`: a running one), the ConformanceReport into conformance/reports/,
# non-zero when a claimed feature fails. `ARGS=--write` makes what passed the claim. Root.
conformance: setup
	@$(PY) -m conformance $(ARGS)

# The OCI image (issue 13): Debian and PyPI packages only, into build/image/ (image/README.md).
image: setup
	@PYTHON=$(abspath $(PY)) bash image/build.sh

down:
	@$(TULLE) lab down

clean: down
	rm -rf $(VENV) *.egg-info

# L4 benchmark (issue 3): Tulle's eBPF ClusterIP vs pod IP vs kube-proxy-style iptables, in
# lab namespaces. Results go to bench/results/. `make bench-l4 ARGS=--quick` for a smoke run.
.PHONY: bench-l4
bench-l4: setup
	@$(PY) -m bench.l4 $(ARGS)

# Flow observability (issue 5): agent ingestion rate, and the datapath cost of flow events.
.PHONY: bench-observe
bench-observe: setup
	@$(PY) -m bench.observe $(ARGS)

# Waypoint vs Envoy (issue 4), each on one core, same 50-rule route table and backend.
# Kernel tracing cost (issue 12): tracing on vs off in one lab, L4 + keep-alive + waypoint.
# `make bench-trace ARGS=--quick` for a smoke run.
.PHONY: bench-trace
bench-trace: setup
	@$(PY) -m bench.trace $(ARGS)

# Control plane (issue 10): kubectl apply of an endpoint change -> datapath maps, p50/p99 over 50
# changes at 10 and 10,000 Services, and an agent's first full sync (seconds, peak RSS).
.PHONY: bench-control
bench-control: setup
	@$(PY) -m bench.control.apply $(ARGS)

# mTLS (issue 11): plaintext kernel L4, the plaintext waypoint and the mTLS tunnel side by
# side (latency at 1,000 req/s, max req/s, waypoint CPU, bulk). `ARGS=--quick` for a smoke run.
.PHONY: bench-mtls
bench-mtls: setup
	@$(PY) -m bench.mtls $(ARGS)

.PHONY: bench-l7
bench-l7: setup
	@$(PY) -m bench.l7 $(ARGS)

# L7 with policies (issue 14): Tulle and Envoy, each with the policies off and on, in one run
# (20 AuthorizationPolicy rules, a rate limit never reached, outlier detection; Envoy: RBAC,
# local_ratelimit, outlier_detection from the same objects). Target: the Tulle/Envoy req/s
# ratio with the policies on is at least the ratio with them off. `ARGS=--quick` for a smoke run.
.PHONY: bench-l7-policies
bench-l7-policies: setup
	@$(PY) -m bench.l7.policy_bench $(ARGS)

# gRPC and TCPRoute (issue 16): Tulle vs Envoy side by side, one core each, in one run each;
# target >= 1.5x Envoy's rate. gRPC: unary calls/s through the waypoint vs Envoy (h2c in and
# out, 50 GRPCRoute rules, h2load). TCPRoute (root, a lab of its own): new connections/s
# through a Gateway TCP listener served in the kernel vs Envoy's tcp_proxy, same backend.
# `ARGS=--quick` for a smoke run, `ARGS="--label busy-smoke"` names a result on a shared machine.
.PHONY: bench-l7-grpc bench-l7-tcproute
bench-l7-grpc: setup
	@$(PY) -m bench.l7.grpc_bench $(ARGS)
bench-l7-tcproute: setup
	@$(PY) -m bench.l7.tcproute_bench $(ARGS)
