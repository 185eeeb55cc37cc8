#!/usr/bin/env bash
# The smoke checks `make demo` makes in the lab, on the VMs: echo pods on different nodes
# behind a Service, requests by name from a client pod (kernel load balancing across nodes),
# an HTTPRoute accepted by Tulle's GatewayClass controller and served through the waypoint,
# and the flows of those requests from the agent's observer API. Exits non-zero on the first
# check that fails, naming it.
set -euo pipefail
# Vagrant uploads this file alone; its helpers are in the rsynced checkout.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. /tulle/vagrant/provision/lib.sh
need_root
export KUBECONFIG="$ADMIN_KUBECONFIG"
smoke="$TULLE_SRC/vagrant/smoke"
ns=tulle-smoke

say "echo Deployment, its Service and a client pod (namespace $ns)"
kubectl apply -f "$smoke/echo.yaml"
kubectl -n "$ns" rollout status deployment/echo --timeout 180s
kubectl -n "$ns" wait pod/client --for condition=Ready --timeout 180s
kubectl -n "$ns" get pods -o wide

get() {  # URL: GET it from the client pod; prints "<pod that answered> <path it saw>"
  kubectl -n "$ns" exec client -- python -c '
import json, sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=5) as r:
    body = json.load(r)
print(body["pod"], body["path"])' "$1"
}

say "requests to echo.$ns by name, load-balanced in the kernel"
answered=""
for i in 1 2 3 4 5 6 7 8; do
  line="$(get "http://echo.$ns.svc.cluster.local/hello?n=$i")" || fail "request $i to echo.$ns failed"
  echo "  $line"
  answered+="${line%% *}"$'\n'
done
pods="$(printf '%s' "$answered" | sort -u | grep -c .)"
[ "$pods" -ge 2 ] || fail "all 8 requests were answered by one pod; expected both echo pods (on different nodes)"

say "an HTTPRoute on the Service: accepted, and its requests pass the node's waypoint"
kubectl apply -f "$smoke/route.yaml"
accepted() {
  kubectl -n "$ns" get httproute echo -o jsonpath='{.status.parents[*].conditions[?(@.type=="Accepted")].status}' | grep -q True
}
wait_for 60 "HTTPRoute $ns/echo Accepted" accepted
line="$(get "http://echo.$ns.svc.cluster.local/routed")" || fail "request through the HTTPRoute failed"
echo "  $line"

say "flows of those requests (tulle observe in an agent pod)"
# The agent on the client's node saw every request leave; ask its own observer port
# (hostNetwork, 127.0.0.1:4244) from its pod's default container.
node="$(kubectl -n "$ns" get pod client -o jsonpath='{.spec.nodeName}')"
agent="$(kubectl -n tulle-system get pods --field-selector "spec.nodeName=$node" -o name | grep -m1 '^pod/tulle-agent-')" \
  || fail "no tulle-agent pod on node $node (kubectl -n tulle-system get pods -o wide)"
flows="$(kubectl -n tulle-system exec "$agent" -- \
  tulle observe --server localhost:4244 --last 200 -o json --namespace "$ns")" \
  || fail "tulle observe failed in the agent pod"
printf '%s\n' "$flows" | tail -n 5
printf '%s\n' "$flows" | jq -e 'select(.flow.verdict == "FORWARDED")' >/dev/null \
  || fail "no FORWARDED flow of namespace $ns in the agent's observer"

say "smoke checks passed"
