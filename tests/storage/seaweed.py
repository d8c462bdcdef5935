"""A real SeaweedFS on 127.0.0.1 for the storage tier: master, volume server, filer, S3 gateway and FUSE mounts.

Each server is its own ``weed`` process under a temporary directory, so a test can kill and restart the filer
or the volume server alone. Mounts are ``weed mount`` processes started with exactly the arguments the CSI
node plugin would build from the project's PersistentVolume (``components.core.csi_mount.weed_mount_args``); two
mounts of the same filer path stand in for two nodes. Telemetry is switched off: nothing leaves 127.0.0.1.

``weed`` comes from the versioned toolchain (scripts/e2e/setup.sh); mounting needs root, ``/dev/fuse`` and
``fusermount3`` (Debian's fuse3).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.core.csi_mount import MountPlan, NodePlugin, weed_mount_args

TOOLCHAIN_BIN = (
    Path(os.environ.get("GPU_JUPYTERHUB_TOOLCHAIN", Path.home() / ".cache/gpu-jupyterhub/toolchain")) / "bin"
)


def weed_binary() -> Path | None:
    found = shutil.which("weed", path=f"{TOOLCHAIN_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    return Path(found) if found else None


def missing_requirements() -> list[str]:
    """What this machine lacks for real FUSE mounts, as short phrases (empty when all is there)."""
    missing = []
    if weed_binary() is None:
        missing.append(f"weed (run scripts/e2e/setup.sh; looked in {TOOLCHAIN_BIN} and PATH)")
    if not Path("/dev/fuse").exists():
        missing.append("/dev/fuse")
    if shutil.which("fusermount3") is None:
        missing.append("fusermount3 (Debian package fuse3)")
    if os.geteuid() != 0:
        missing.append("root (FUSE mounts with allow_other)")
    return missing


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float, proc: subprocess.Popen[bytes] | None = None, log: Path | None = None) -> None:
    end = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:] if log else ""
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode} before {url} answered:\n{tail}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answers; the status is the caller's business
        except OSError as exc:
            last = exc
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout}s: {last}")


def log_env(log: Path) -> dict[str, str]:
    """weed's glog writes weed.<host>.<user>.log.* into TMPDIR: beside our log, removed with the test's files."""
    return {**os.environ, "TMPDIR": str(log.parent)}


def stop_process(proc: subprocess.Popen[bytes] | None, grace: float) -> None:
    """SIGTERM the process group, SIGKILL it after ``grace`` seconds."""
    if proc is None or proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


@dataclass
class Server:
    """One ``weed`` server process with fixed ports, restartable in place (same data directory)."""

    name: str
    args: list[str]
    health: str
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                self.args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=log_env(self.log)
            )
        wait_http(self.health, timeout, self.proc, self.log)

    def kill(self) -> None:
        """SIGKILL: a crash, not a shutdown."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        stop_process(self.proc, 3)


@dataclass
class Mount:
    """A ``weed mount`` of the notebooks volume: one simulated node's view."""

    node: str
    path: Path
    plan: MountPlan
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self, weed: Path, timeout: float = 60) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [str(weed), *self.plan.args],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=log_env(self.log),
            )
        end = time.monotonic() + timeout
        while not os.path.ismount(self.path):
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"weed mount for {self.node} exited with {self.proc.returncode}:\n"
                    + self.log.read_text(errors="replace")[-3000:]
                )
            if time.monotonic() > end:
                raise TimeoutError(f"weed mount for {self.node} not mounted after {timeout}s")
            time.sleep(0.1)

    def stop(self) -> None:
        subprocess.run(["fusermount3", "-u", "-z", str(self.path)], capture_output=True, check=False)
        stop_process(self.proc, 15)


@dataclass
class SeaweedFS:
    """Master, volume server, filer and S3 gateway on 127.0.0.1 under ``root``; ``mount()`` adds nodes."""

    root: Path
    weed: Path
    servers: dict[str, Server] = field(default_factory=dict)
    mounts: list[Mount] = field(default_factory=list)

    @property
    def filer_address(self) -> str:
        return f"127.0.0.1:{self.ports['filer']}"

    @property
    def filer_url(self) -> str:
        return f"http://{self.filer_address}"

    @property
    def s3_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3']}"

    def __post_init__(self) -> None:
        self.ports = {k: free_port() for k in ("master", "volume", "filer", "s3")}
        grpc = {k: free_port() for k in ("master", "volume", "filer", "s3")}
        w, ip = str(self.weed), ["-ip=127.0.0.1", "-ip.bind=127.0.0.1"]
        master = f"127.0.0.1:{self.ports['master']}.{grpc['master']}"
        for d in ("master", "volume", "filer", "logs"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        logs = self.root / "logs"
        self.servers = {
            "master": Server(
                "master",
                [
                    w,
                    "master",
                    *ip,
                    f"-port={self.ports['master']}",
                    f"-port.grpc={grpc['master']}",
                    f"-mdir={self.root / 'master'}",
                    "-volumeSizeLimitMB=128",
                    "-telemetry=false",
                    "-peers=none",
                    "-defaultReplication=000",
                ],
                f"http://127.0.0.1:{self.ports['master']}/cluster/status",
                logs / "master.log",
            ),
            "volume": Server(
                "volume",
                [
                    w,
                    "volume",
                    *ip,
                    f"-port={self.ports['volume']}",
                    f"-port.grpc={grpc['volume']}",
                    f"-dir={self.root / 'volume'}",
                    "-max=64",
                    f"-master={master}",
                    "-minFreeSpace=1GiB",
                ],
                f"http://127.0.0.1:{self.ports['volume']}/status",
                logs / "volume.log",
            ),
            "filer": Server(
                "filer",
                [
                    w,
                    "filer",
                    *ip,
                    f"-port={self.ports['filer']}",
                    f"-port.grpc={grpc['filer']}",
                    f"-master={master}",
                    f"-defaultStoreDir={self.root / 'filer'}",
                ],
                f"http://127.0.0.1:{self.ports['filer']}/",
                logs / "filer.log",
            ),
        }
        self._filer_grpc = grpc["filer"]
        self._s3_grpc = grpc["s3"]

    def start(self) -> None:
        for name in ("master", "volume", "filer"):
            self.servers[name].start()
        self.wait_writable()

    def start_s3(self, access_key: str, secret_key: str) -> None:
        """The S3 gateway with one identity (the backup tier's target)."""
        cfg = self.root / "s3.json"
        cfg.write_text(
            json.dumps(
                {
                    "identities": [
                        {
                            "name": "backup",
                            "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                            "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                        }
                    ]
                }
            )
        )
        self.servers["s3"] = Server(
            "s3",
            [
                str(self.weed),
                "s3",
                "-ip.bind=127.0.0.1",
                f"-port={self.ports['s3']}",
                f"-port.grpc={self._s3_grpc}",
                f"-filer={self.filer_address}.{self._filer_grpc}",
                f"-config={cfg}",
            ],
            f"http://127.0.0.1:{self.ports['s3']}/",
            self.root / "logs" / "s3.log",
        )
        self.servers["s3"].start()

    def wait_writable(self, timeout: float = 60) -> None:
        """Until the filer can store a file (the volume server has registered and volumes can grow)."""
        end = time.monotonic() + timeout
        last = ""
        while time.monotonic() < end:
            req = urllib.request.Request(f"{self.filer_url}/.probe/ready", data=b"ok", method="PUT")
            try:
                with urllib.request.urlopen(req, timeout=10) as r:
                    if r.status < 300:
                        return
            except OSError as exc:
                last = str(exc)
            time.sleep(0.3)
        raise TimeoutError(f"the filer could not store a file within {timeout}s: {last}")

    def node_plugin(self, **overrides: Any) -> NodePlugin:
        return NodePlugin(filers=(f"{self.filer_address}.{self._filer_grpc}",), **overrides)

    def mount(self, node: str, pv: dict[str, Any], plugin: NodePlugin | None = None) -> Mount:
        """Mount ``pv`` as the CSI node plugin on ``node`` would, with its own cache and socket."""
        base = self.root / "nodes" / node
        base.mkdir(parents=True, exist_ok=True)
        plan = weed_mount_args(
            pv,
            str(base / "mnt"),
            plugin or self.node_plugin(),
            cache_dir=str(base / "cache"),
            socket=str(base / "mount.sock"),
        )
        m = Mount(node, base / "mnt", plan, self.root / "logs" / f"mount-{node}.log")
        m.start(self.weed)
        self.mounts.append(m)
        return m

    def close(self) -> None:
        for m in self.mounts:
            with contextlib.suppress(Exception):
                m.stop()
        for name in ("s3", "filer", "volume", "master"):
            if name in self.servers:
                with contextlib.suppress(Exception):
                    self.servers[name].stop()
