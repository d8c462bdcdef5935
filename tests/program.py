"""Run ``__main__.py`` under Pulumi's own mocks and record what it registers.

The recording monitor keeps each resource's raw wire inputs too, so tests can see which values travel
as Pulumi secrets (the signature key below) and that no secret appears anywhere in clear.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import runpy
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from google.protobuf import json_format
from pulumi.runtime import mocks as pmocks

ROOT = Path(__file__).resolve().parents[1]
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
SIG_KEY = "4dabf18193072939515e22adb298388d"
FAKE_DIGEST = "sha256:" + "ab" * 32


@dataclass
class Registered:
    type: str
    name: str
    inputs: dict[str, Any]
    raw: dict[str, Any]
    parent: str
    protect: bool
    retain_on_delete: bool
    provider: str
    depends_on: list[str]

    @property
    def urn_name(self) -> str:
        return self.name


@dataclass
class Run:
    resources: list[Registered] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    kubectl: list[list[str]] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    output_secret: dict[str, bool] = field(default_factory=dict)

    def of_type(self, typ: str) -> list[Registered]:
        return [r for r in self.resources if r.type == typ]

    def one(self, typ: str) -> Registered:
        found = self.of_type(typ)
        assert len(found) == 1, f"expected one {typ}, got {[r.name for r in found]}"
        return found[0]

    def by_name(self, name: str) -> Registered:
        return next(r for r in self.resources if r.name == name)


class Mocks(pulumi.runtime.Mocks):
    def __init__(self, preview: bool = False) -> None:
        self.preview = preview
        self.calls: list[dict[str, Any]] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        state = dict(args.inputs)
        if args.typ == "docker:index/image:Image":
            name = str(args.inputs.get("imageName", args.name))
            if not self.preview:  # in a preview the digest is unknown, as with the real provider
                state["repoDigest"] = f"{name.split(':')[0]}@{FAKE_DIGEST}"
        if args.typ == "kubernetes:helm.sh/v3:Release":
            state["status"] = {"status": "deployed"}
        return f"{args.name}-id", state

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        self.calls.append({"token": args.token, "args": dict(args.args)})
        return {}, []


@contextlib.contextmanager
def fake_kubectl(
    nodes_json: str | None, fail: str | None, storage_json: str | None = None
) -> Iterator[list[list[str]]]:
    """A ``kubectl`` first on PATH that records its arguments and prints ``nodes_json`` for nodes and
    ``storage_json`` (default: an empty list) for anything else (or fails with ``fail``).

    The program runs kubectl as a subprocess, so the real lookup code runs; only the binary is fake.
    """
    calls: list[list[str]] = []
    with tempfile.TemporaryDirectory(prefix="fake-kubectl-") as d:
        log, out, other = Path(d) / "calls.jsonl", Path(d) / "out.json", Path(d) / "other.json"
        out.write_text(nodes_json or "")
        other.write_text(storage_json or '{"apiVersion": "v1", "kind": "List", "items": []}')
        script = Path(d) / "kubectl"
        answer = f"sys.stdout.write(open({str(out)!r} if sys.argv[2] == 'nodes' else {str(other)!r}).read())\n"
        body = f"import json, sys\nopen({str(log)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n" + (
            f"sys.stderr.write({fail!r})\nsys.exit(1)\n" if fail else answer
        )
        script.write_text(f"#!{sys.executable}\n{body}")
        script.chmod(0o755)
        old_path = os.environ.get("PATH", "")
        os.environ["PATH"] = f"{d}{os.pathsep}{old_path}"
        try:
            yield calls
        finally:
            os.environ["PATH"] = old_path
            if log.exists():
                calls.extend(json.loads(line) for line in log.read_text().splitlines())


class RecordingMonitor(pmocks.MockMonitor):
    def __init__(self, mocks: Mocks, run: Run) -> None:
        super().__init__(mocks)
        self.run = run

    def RegisterResource(self, request: Any) -> Any:
        raw = json_format.MessageToDict(request.object) if request.HasField("object") else {}
        result = super().RegisterResource(request)
        inputs = _unwrap(raw)
        self.run.resources.append(
            Registered(
                type=request.type,
                name=request.name,
                inputs=inputs,
                raw=raw,
                parent=request.parent,
                protect=bool(request.protect),
                retain_on_delete=bool(request.retainOnDelete),
                provider=request.provider,
                depends_on=list(request.dependencies),
            )
        )
        return result


def _unwrap(value: Any) -> Any:
    if isinstance(value, dict):
        if value.get(SIG_KEY) == SECRET_SIG:
            return _unwrap(value.get("value"))
        return {k: _unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unwrap(v) for v in value]
    return value


def plain_strings(raw: Any) -> list[str]:
    """Every string in wire inputs that is not inside a secret wrapper."""
    out: list[str] = []
    if isinstance(raw, dict):
        if raw.get(SIG_KEY) == SECRET_SIG:
            return out
        for k, v in raw.items():
            out.append(str(k))
            out.extend(plain_strings(v))
    elif isinstance(raw, list):
        for v in raw:
            out.extend(plain_strings(v))
    elif isinstance(raw, str):
        out.append(raw)
    return out


def pulumi_config(raw: dict[str, Any], secret_keys: tuple[str, ...] = ()) -> tuple[dict[str, str], list[str]]:
    """A namespace's config as the Pulumi engine hands it to the program (JSON text per key)."""
    flat = {f"gpu-jupyterhub:{k}": v if isinstance(v, str) else json.dumps(v) for k, v in raw.items()}
    return flat, [f"gpu-jupyterhub:{k}" for k in secret_keys]


def run_program(
    config: dict[str, Any],
    *,
    preview: bool = False,
    nodes_json: str | None = None,
    fail_kubectl: str | None = None,
    storage_json: str | None = None,
    secret_keys: tuple[str, ...] = (),
    record: Run | None = None,
) -> Run:
    """Execute __main__.py under mocks; raises what the program raises (e.g. pulumi.RunError).

    ``record`` receives what was registered even when the program fails.
    """
    run = record if record is not None else Run()
    # asyncio.run() elsewhere in the session leaves no current loop; Pulumi's runtime expects one.
    asyncio.set_event_loop(asyncio.new_event_loop())
    mocks = Mocks(preview=preview)
    monitor = RecordingMonitor(mocks, run)
    from pulumi.runtime import settings

    settings.ROOT.set(None)  # a fresh Stack per run, so exports do not leak between tests
    pulumi.runtime.set_mocks(mocks, project="gpu-jupyterhub", stack="dev", preview=preview, monitor=monitor)
    flat, secrets = pulumi_config(config, secret_keys)
    pulumi.runtime.set_all_config(flat, secrets)

    @pulumi.runtime.test
    def body() -> Any:
        runpy.run_path(str(ROOT / "__main__.py"), run_name="__main__")
        stack = pulumi.runtime.get_root_resource()
        outputs = dict(getattr(stack, "outputs", {}) or {})

        async def collect() -> None:
            for key, value in outputs.items():
                out = pulumi.Output.from_input(value)
                run.outputs[key] = await out.future()
                run.output_secret[key] = await out.is_secret()

        return pulumi.Output.from_input(collect())

    try:
        with fake_kubectl(nodes_json, fail_kubectl, storage_json) as kubectl_calls:
            body()
    finally:
        run.calls = mocks.calls
        run.kubectl = kubectl_calls
        pulumi.runtime.set_all_config({}, [])
    return run
