#!/usr/bin/env bash
# Stop what scripts/test.sh started and left running: the local registry and dockerd (started by
# scripts/docker/setup.sh, as root), any simulated cluster of the e2e tier (scripts/e2e/cluster.py) and its
# real node (scripts/e2e/node.py).
# Caches are kept (.work/, ~/.cache/gpu-jupyterhub); delete those directories to reclaim the disk.
set -uo pipefail
cd "$(dirname "$0")/.."
state="${GPU_JUPYTERHUB_WORK_DIR:-$PWD/.work}/docker"
e2e="${GPU_JUPYTERHUB_E2E_DIR:-$HOME/.cache/gpu-jupyterhub/e2e}"
if [[ -d "$e2e/kwok/clusters" && -x .venv/bin/python ]]; then
  for c in "$e2e"/kwok/clusters/*/; do
    [[ -d "$c" ]] && .venv/bin/python scripts/e2e/cluster.py down "$(basename "$c")" && echo "stop.sh: cluster $(basename "$c") deleted"
  done
fi
# The real node of the node tier (scripts/e2e/node.py), if a cluster's teardown did not reach it: its processes
# by PID, its containers, mounts, Service rules and bridge.
if [[ -d "$e2e/node" && -x .venv/bin/python ]]; then
  .venv/bin/python scripts/e2e/node.py down
fi
# Leftovers of an interrupted run, once no simulated cluster runs any more: the Kubernetes provider's kubeconfig
# copies of the e2e clusters in /tmp (0600, with their credentials; finished runs remove theirs), the
# controller-manager's hostpath provisioner directories, and SeaweedFS logs written to /tmp by older runs.
if ! pgrep -x kube-controller >/dev/null 2>&1 && ! pgrep -f kube-controller-manager >/dev/null 2>&1; then
  n=0
  for f in /tmp/kubeconfig[0-9]*; do
    [[ -f "$f" ]] && grep -q "kwok-" "$f" 2>/dev/null && rm -f "$f" && n=$((n + 1))
  done
  ((n)) && echo "stop.sh: removed $n kubeconfig copies of deleted e2e clusters from /tmp"
  [[ -d /tmp/hostpath_pv ]] && rm -rf /tmp/hostpath_pv && echo "stop.sh: removed /tmp/hostpath_pv"
fi
if ! pgrep -x weed >/dev/null 2>&1; then
  rm -f /tmp/weed.*.log.* /tmp/weed.INFO /tmp/weed.WARNING /tmp/weed.ERROR /tmp/weed.FATAL 2>/dev/null
fi
# Only the processes setup.sh started (their pids are in its state directory), never another dockerd.
for name in registry dockerd; do
  pidfile="$state/$name.pid"
  if [[ -f "$pidfile" ]] && kill "$(cat "$pidfile")" 2>/dev/null; then
    echo "stop.sh: $name stopped"
  fi
  rm -f "$pidfile"
done
exit 0
