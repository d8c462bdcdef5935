"""A real node for the e2e cluster: containerd and runc run the pods, the kubelet registers with the cluster's API
server, CNI plugins wire each pod to a local bridge, kube-proxy programs Service addresses and CoreDNS answers
cluster names, all as host processes started and stopped here (by PID).

Everything stays on this machine: the pods' bridge (POD_CIDR) has no route off the host, the bridge plugin masquerades
nothing, a FORWARD rule drops whatever a pod sends towards another interface, and CoreDNS forwards nothing. The node
holds no registry credentials: the sandbox image is imported from the local Docker engine, every other image is
pulled from the local registry with the pod's own imagePullSecrets.

Usage (as root, the toolchain of scripts/e2e/setup.sh built, Debian's containerd, runc, containernetworking-plugins,
iptables and conntrack installed; scripts/e2e/cluster.py calls these for `up --real-node`):
  python scripts/e2e/node.py network-up          the bridge and the isolation rule (before the API server starts)
  python scripts/e2e/node.py up NAME SANDBOX_IMAGE   containerd, kubelet, kube-proxy, CoreDNS; waits for Ready
  python scripts/e2e/node.py down                stops all of it, removes its containers, mounts, rules and bridge
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cluster

NODE_NAME = "e2e-real-node"
BRIDGE = "gjh-e2e0"
POD_CIDR = "10.244.0.0/24"
NODE_IP = "10.244.0.1"  # the bridge's address: the pods' gateway, the node IP, the API server and DNS address
SERVICE_CIDR = "10.96.0.0/16"
KUBERNETES_SERVICE_IP = "10.96.0.1"
CLUSTER_DOMAIN = "cluster.local"
DOCKER = "/usr/bin/docker"  # Debian's client, matching the engine scripts/docker/setup.sh starts
ISOLATE_CHAIN = "GJH-E2E-ISOLATE"
# Labels of the real node: a core node (the hub's and proxy's preferred place) that also runs user servers.
NODE_LABELS = {"hub.jupyter.org/node-purpose": "core"}
PROCESSES = ("kube-proxy", "kubelet", "coredns", "containerd")  # stop order
REQUIRED = {
    "/usr/bin/containerd": "containerd",
    "/usr/sbin/runc": "runc",
    "/usr/lib/cni/bridge": "containernetworking-plugins",
    "/usr/sbin/iptables": "iptables",
    "/usr/sbin/conntrack": "conntrack",
}


class NodeError(cluster.ClusterError):
    pass


def node_dir() -> Path:
    return cluster.e2e_dir() / "node"


def socket_path() -> Path:
    # short and outside the cache: a unix socket path is limited to 107 bytes
    return Path("/run/gpu-jupyterhub-e2e/containerd.sock")


def _sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(args), capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise NodeError(f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}")
    return proc


def missing_packages() -> list[str]:
    return sorted({pkg for path, pkg in REQUIRED.items() if not Path(path).exists()})


def network_up() -> None:
    """The pods' bridge with the node address, bridged traffic through iptables (Services between pods on one
    bridge need it), and the rule that keeps pod traffic on this machine."""
    if os.geteuid() != 0:
        raise NodeError("a real node needs root (bridge, iptables, containerd)")
    missing = missing_packages()
    if missing:
        raise NodeError(f"a real node needs Debian's {', '.join(missing)}: apt-get install {' '.join(missing)}")
    if _sh("ip", "link", "show", BRIDGE, check=False).returncode != 0:
        _sh("ip", "link", "add", BRIDGE, "type", "bridge")
    _sh("ip", "addr", "replace", f"{NODE_IP}/24", "dev", BRIDGE)
    _sh("ip", "link", "set", BRIDGE, "up")
    # Service addresses without a kube-proxy rule end on the bridge, never on the default route off the host
    _sh("ip", "route", "replace", SERVICE_CIDR, "dev", BRIDGE)
    Path("/proc/sys/net/bridge/bridge-nf-call-iptables").write_text("1\n")
    Path("/proc/sys/net/ipv4/ip_forward").write_text("1\n")  # bridge <-> host; the rule below stops the rest
    if _sh("iptables", "-w", "-n", "-L", ISOLATE_CHAIN, check=False).returncode != 0:
        _sh("iptables", "-w", "-N", ISOLATE_CHAIN)
    _sh("iptables", "-w", "-F", ISOLATE_CHAIN)
    _sh("iptables", "-w", "-A", ISOLATE_CHAIN, "-i", BRIDGE, "!", "-o", BRIDGE, "-j", "DROP")
    _sh("iptables", "-w", "-A", ISOLATE_CHAIN, "!", "-i", BRIDGE, "-o", BRIDGE, "-j", "DROP")
    if _sh("iptables", "-w", "-C", "FORWARD", "-j", ISOLATE_CHAIN, check=False).returncode != 0:
        _sh("iptables", "-w", "-I", "FORWARD", "1", "-j", ISOLATE_CHAIN)


def network_down() -> None:
    _sh("iptables", "-w", "-D", "FORWARD", "-j", ISOLATE_CHAIN, check=False)
    _sh("iptables", "-w", "-F", ISOLATE_CHAIN, check=False)
    _sh("iptables", "-w", "-X", ISOLATE_CHAIN, check=False)
    _sh("ip", "link", "del", BRIDGE, check=False)


def kwokctl_config() -> str:
    """kwokctl's configuration for a cluster with a real node: the API server's certificate also names the
    addresses pods reach it by (the kubernetes Service and the node address), it advertises the node address
    (the kubernetes Service's endpoint, which pods reach over the bridge) and allocates Services from
    SERVICE_CIDR. (In the file, not as --extra-args: kwokctl 0.8 indexes repeated --extra-args wrongly.)"""
    api_args = {
        "advertise-address": NODE_IP,
        "service-cluster-ip-range": SERVICE_CIDR,
        # logs, exec and port-forward by the node's address: its host name is in no resolver of this machine
        "kubelet-preferred-address-types": "InternalIP",
    }
    return json.dumps(
        {
            "kind": "KwokctlConfiguration",
            "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
            "options": {"kubeApiserverCertSANs": [KUBERNETES_SERVICE_IP, NODE_IP]},
            "componentsPatches": [
                {"name": "kube-apiserver", "extraArgs": [{"key": k, "value": v} for k, v in api_args.items()]}
            ],
        }
    )


def containerd_config(d: Path, sandbox_image: str) -> str:
    return f"""version = 2
root = "{d}/containerd/root"
state = "/run/gpu-jupyterhub-e2e/containerd"
[grpc]
  address = "{socket_path()}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{sandbox_image}"
  # root here lacks CAP_SYS_RESOURCE: without this every sandbox fails to start
  restrict_oom_score_adj = true
  disable_apparmor = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{d}/cni"
  # the local registry speaks plain HTTP; credentials come from each pod's imagePullSecrets
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."127.0.0.1:5055"]
    endpoint = ["http://127.0.0.1:5055"]
"""


def cni_config(d: Path) -> dict[str, Any]:
    return {
        "cniVersion": "1.0.0",
        "name": "gpu-jupyterhub-e2e",
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                "ipMasq": False,  # nothing leaves this machine, so nothing is masqueraded outwards
                "hairpinMode": True,  # a pod reaching itself through its Service
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_CIDR, "gateway": NODE_IP}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(d / "cni-ipam"),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def kubelet_config(d: Path, ca_file: Path) -> dict[str, Any]:
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": NODE_IP,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(ca_file)},
        },
        "authorization": {"mode": "Webhook"},
        "cgroupDriver": "cgroupfs",
        "failCgroupV1": False,  # this machine's hierarchy is v1 (hybrid); kubelet 1.34 still runs on it
        "containerRuntimeEndpoint": f"unix://{socket_path()}",
        "clusterDNS": [NODE_IP],
        "clusterDomain": CLUSTER_DOMAIN,
        "resolvConf": str(d / "resolv.conf"),  # no host resolvers in pods: names resolve in the cluster only
        "podCIDR": POD_CIDR,
        "failSwapOn": False,
        "serializeImagePulls": False,
        "maxPods": 110,
        # a shared test machine: evict only when really out of room, never GC images the tests pulled
        "evictionHard": {"memory.available": "200Mi", "nodefs.available": "2%", "imagefs.available": "2%"},
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "syncFrequency": "10s",
        "fileCheckFrequency": "10s",
        "nodeStatusUpdateFrequency": "5s",
    }


def kube_proxy_config(kubeconfig: Path) -> dict[str, Any]:
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "hostnameOverride": NODE_NAME,
        "mode": "iptables",
        "clusterCIDR": POD_CIDR,
        "bindAddress": NODE_IP,
        "healthzBindAddress": "127.0.0.1:10256",
        "metricsBindAddress": "127.0.0.1:10249",
        "nodePortAddresses": [f"{NODE_IP}/32"],  # NodePorts on the bridge address only, never on eth0
        "conntrack": {"maxPerCore": 0, "min": 0},  # leave the host's conntrack table size alone
        "iptables": {"localhostNodePorts": False},
    }


def corefile(kubeconfig: Path, context: str) -> str:
    return f""".:53 {{
    bind {NODE_IP}
    errors
    ready 127.0.0.1:8181
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        kubeconfig {kubeconfig} {context}
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }}
    cache 5
}}
"""


def _start(name: str, args: list[str], d: Path) -> int:
    log = open(d / f"{name}.log", "wb")  # noqa: SIM115 - handed to the process (one log per start)
    proc = subprocess.Popen(
        args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
    )
    (d / f"{name}.pid").write_text(f"{proc.pid}\n")
    return proc.pid


def _alive(pid: int, binary: str) -> bool:
    """The process runs (not a zombie) and is ``binary``: by its kernel name (``comm``, set at exec), since
    its command line reads empty for a moment after exec."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    comm, state = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2]
    return comm == binary[:15] and state not in "ZX"


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _wait(what: str, check: Any, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise NodeError(f"timed out after {timeout:.0f} s waiting for {what}; last lines of {log}:\n{_tail(log)}")


def _ctr(*args: str, check: bool = True, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    proc = subprocess.run(
        ["ctr", f"--address={socket_path()}", "--namespace=k8s.io", *args],
        input=stdin,
        capture_output=True,
        check=False,
    )
    if check and proc.returncode != 0:
        raise NodeError(f"ctr {' '.join(args[:3])} failed: {proc.stderr.decode(errors='replace').strip()}")
    return proc


def import_sandbox_image(ref: str) -> None:
    """The pause image from the local Docker engine into the node's containerd (the node has no registry
    credentials, and the kubelet never pulls the sandbox image with a pod's secrets). Saved by a tag (an archive
    saved by digest names no image), then also named ``ref``, the name containerd's sandbox_image gives."""
    inspect = subprocess.run(
        [DOCKER, "image", "inspect", "--format", "{{json .RepoTags}}", ref],
        capture_output=True,
        text=True,
        check=False,
    )
    tags = json.loads(inspect.stdout or "null") or []
    if inspect.returncode != 0 or not tags:
        raise NodeError(f"sandbox image {ref} is not in the local Docker engine with a tag (build and push it first)")
    saved = subprocess.run([DOCKER, "save", tags[0]], capture_output=True, check=False)
    if saved.returncode != 0:
        raise NodeError(f"docker save {tags[0]} failed: {saved.stderr.decode(errors='replace').strip()}")
    _ctr("images", "import", "--no-unpack", "-", stdin=saved.stdout)
    if tags[0] != ref:
        _ctr("images", "rm", ref, check=False)
        _ctr("images", "tag", tags[0], ref)


def up(name: str, sandbox_image: str, timeout: float = 120) -> str:
    """Start the node's processes against cluster ``name`` (created with its network up); returns the node name
    once it is Ready."""
    d = node_dir()
    down(quiet=True, keep_network=True)
    for sub in ("cni", "kubelet", "cni-ipam"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    socket_path().parent.mkdir(parents=True, exist_ok=True)
    bin_dir = cluster.toolchain_bin()
    missing = [b for b in ("kubelet", "kube-proxy", "coredns") if not (bin_dir / b).exists()]
    if missing:
        raise NodeError(f"toolchain missing {', '.join(missing)} in {bin_dir}: run scripts/e2e/setup.sh first")

    kubeconfig = d / "kubeconfig"
    raw = cluster.kubectl(name, "config", "view", "--raw", "--minify", f"--context={cluster.context_of(name)}").stdout
    kubeconfig.write_text(raw)
    kubeconfig.chmod(0o600)
    ca_file = cluster.e2e_dir() / "kwok" / "clusters" / name / "pki" / "ca.crt"

    (d / "containerd.toml").write_text(containerd_config(d, sandbox_image))
    (d / "cni" / "10-gpu-jupyterhub-e2e.conflist").write_text(json.dumps(cni_config(d), indent=2))
    (d / "resolv.conf").write_text("")
    (d / "kubelet.yaml").write_text(json.dumps(kubelet_config(d, ca_file), indent=2))
    (d / "kube-proxy.yaml").write_text(json.dumps(kube_proxy_config(kubeconfig), indent=2))
    (d / "Corefile").write_text(corefile(kubeconfig, cluster.context_of(name)))

    _start("containerd", ["containerd", f"--config={d / 'containerd.toml'}"], d)
    _wait("containerd", lambda: _ctr("version", check=False).returncode == 0, 30, d / "containerd.log")
    import_sandbox_image(sandbox_image)
    _start("coredns", [str(bin_dir / "coredns"), "-conf", str(d / "Corefile")], d)
    labels = ",".join(f"{k}={v}" for k, v in sorted(NODE_LABELS.items()))
    _start(
        "kubelet",
        [
            str(bin_dir / "kubelet"),
            f"--config={d / 'kubelet.yaml'}",
            f"--kubeconfig={kubeconfig}",
            f"--root-dir={d / 'kubelet'}",
            f"--cert-dir={d / 'kubelet' / 'pki'}",
            f"--hostname-override={NODE_NAME}",
            f"--node-ip={NODE_IP}",
            f"--node-labels={labels}",
            "--v=1",
        ],
        d,
    )
    _start("kube-proxy", [str(bin_dir / "kube-proxy"), f"--config={d / 'kube-proxy.yaml'}", "--v=1"], d)

    def ready() -> bool:
        for name_ in ("containerd", "kubelet", "kube-proxy", "coredns"):
            pid = int((d / f"{name_}.pid").read_text())
            if not _alive(pid, name_):
                raise NodeError(f"{name_} exited; last lines of {d / name_}.log:\n{_tail(d / f'{name_}.log')}")
        proc = cluster.kubectl(name, "get", "node", NODE_NAME, "-o", "json", check=False)
        if proc.returncode != 0:
            return False
        conds = json.loads(proc.stdout).get("status", {}).get("conditions", [])
        return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)

    _wait(f"node {NODE_NAME} to be Ready", ready, timeout, d / "kubelet.log")
    return NODE_NAME


def remove_image(ref: str) -> None:
    """Remove an image from the node with every name the CRI gave it (its tag or digest reference, its repo digest,
    its image ID), so that its layers go too and the next pull downloads them."""
    rows = [line.split() for line in _ctr("images", "ls").stdout.decode().splitlines()[1:]]
    targets = {row[2] for row in rows if row and row[0] == ref}
    names = [row[0] for row in rows if len(row) > 2 and row[2] in targets]
    if names:
        _ctr("images", "rm", "--sync", *names)


def forget_images() -> None:
    """Empty the node's image store (a fresh machine); only while its containerd is stopped."""
    if (node_dir() / "containerd.pid").exists():
        raise NodeError("the node's containerd runs: stop the node first (node.py down)")
    shutil.rmtree(node_dir() / "containerd", ignore_errors=True)


def _stop_pid(name: str, d: Path, binary: str) -> None:
    pidfile = d / f"{name}.pid"
    if not pidfile.exists():
        return
    pid = int(pidfile.read_text().strip() or 0)
    if pid and _alive(pid, binary):
        os.kill(pid, signal.SIGTERM)
        for _ in range(50):
            if not _alive(pid, binary):
                break
            time.sleep(0.1)
        else:
            os.kill(pid, signal.SIGKILL)
    pidfile.unlink(missing_ok=True)


def _remove_containers() -> None:
    """Kill and delete every task and container of the node's containerd (its shims would outlive it)."""
    if _ctr("version", check=False).returncode != 0:
        return
    for line in _ctr("tasks", "ls", "-q", check=False).stdout.decode().split():
        _ctr("tasks", "kill", "-s", "SIGKILL", line, check=False)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and _ctr("tasks", "ls", "-q", check=False).stdout.strip():
        for line in _ctr("tasks", "ls", "-q", check=False).stdout.decode().split():
            _ctr("tasks", "delete", "--force", line, check=False)
        time.sleep(0.3)
    ids = _ctr("containers", "ls", "-q", check=False).stdout.decode().split()
    if ids:
        _ctr("containers", "delete", *ids, check=False)


def _unmount_under(*roots: Path) -> None:
    mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
    for m in sorted(mounts, key=len, reverse=True):
        if any(m == str(r) or m.startswith(f"{r}/") for r in roots):
            _sh("umount", "-l", m, check=False)


def _remove_pod_logs(d: Path) -> None:
    """The kubelet's log directories (/var/log/pods/<namespace>_<pod>_<uid>) of this node's pods."""
    pods = d / "kubelet" / "pods"
    uids = {p.name for p in pods.iterdir()} if pods.is_dir() else set()
    logs = Path("/var/log/pods")
    for entry in logs.iterdir() if logs.is_dir() else []:
        if entry.name.rsplit("_", 1)[-1] in uids:
            shutil.rmtree(entry, ignore_errors=True)


def _remove_pod_netns() -> None:
    netns = Path("/var/run/netns")
    for ns in netns.glob("cni-*") if netns.exists() else []:
        _sh("ip", "netns", "del", ns.name, check=False)


def _remove_cgroups() -> None:
    """The kubelet's pod cgroups, deepest first (each controller's hierarchy has its own copy)."""
    for top in Path("/sys/fs/cgroup").glob("*/kubepods"):
        dirs = sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True)
        for sub in [*dirs, top]:
            with contextlib.suppress(OSError):
                sub.rmdir()


def down(quiet: bool = False, keep_network: bool = False) -> None:
    """Stop the node's processes (by PID), its containers, mounts, Service rules, cgroups and network."""
    d = node_dir()
    bin_dir = cluster.toolchain_bin()
    if d.exists():
        for name in ("kube-proxy", "kubelet", "coredns"):
            _stop_pid(name, d, name)
        _remove_containers()
        _stop_pid("containerd", d, "containerd")
        if (bin_dir / "kube-proxy").exists() and not keep_network:
            subprocess.run([str(bin_dir / "kube-proxy"), "--cleanup"], capture_output=True, check=False)
        _unmount_under(d, Path("/run/gpu-jupyterhub-e2e"))
        _remove_pod_logs(d)
        _remove_pod_netns()
        shutil.rmtree(d / "cni-ipam", ignore_errors=True)
        shutil.rmtree("/run/gpu-jupyterhub-e2e", ignore_errors=True)
        _remove_cgroups()
        if not quiet:
            print(f"node.py: node {NODE_NAME} stopped", file=sys.stderr)
    if not keep_network:
        network_down()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("network-up")
    p_up = sub.add_parser("up")
    p_up.add_argument("name")
    p_up.add_argument("sandbox_image")
    sub.add_parser("down")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "network-up":
            network_up()
        elif args.cmd == "up":
            print(up(args.name, args.sandbox_image))
        else:
            down()
    except cluster.ClusterError as e:
        print(f"node.py: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
