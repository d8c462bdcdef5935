"""The verification client against a real local JupyterHub 5.5 (not a mock): servers really start, kernels
really run code, notebooks are really saved. Not marked `cluster`: this runs in CI."""

from __future__ import annotations

import uuid

import pytest
from hubclient import HubClient, HubError
from localhub import LocalHub
from postdeploy import Profile, Settings, Verifier


def _user(local_hub: LocalHub) -> tuple[str, HubClient]:
    name = f"tester-{uuid.uuid4().hex[:6]}"
    return name, HubClient(local_hub.url, local_hub.new_user(name))


def test_hub_is_the_deployed_version(local_hub: LocalHub) -> None:
    name, hub = _user(local_hub)
    assert hub.version() == "5.5.0"  # chart 4.4.0's JupyterHub
    assert hub.whoami()["name"] == name


def test_start_execute_save_stop(local_hub: LocalHub) -> None:
    name, hub = _user(local_hub)
    hub.start(name, "", {"profile": "cpu-small"})
    model = hub.wait_ready(name, "", timeout=120)
    server = hub.server_client(model)
    try:
        result = server.execute("import os\nprint(os.environ['GPU_JUPYTERHUB_PROFILE'])\n6 * 7")
        assert result.error is None
        assert result.output.split() == ["cpu-small", "42"]  # user_options reached the spawner; code ran

        failing = server.execute("print('before')\n1 / 0")
        assert failing.output == "before\n"
        assert failing.error is not None and failing.error.startswith("ZeroDivisionError")

        notebook = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": []}
        notebook["cells"].append({"cell_type": "markdown", "id": "a", "metadata": {}, "source": "hello"})
        server.make_dirs("checks/deep")
        seconds = server.save_notebook("checks/deep/probe.ipynb", notebook)
        assert 0 < seconds < 10
        assert server.read_notebook("checks/deep/probe.ipynb")["cells"][0]["source"] == "hello"
        assert server.read_notebook("checks/deep/missing.ipynb") is None
        server.delete("checks/deep/probe.ipynb")
        assert server.read_notebook("checks/deep/probe.ipynb") is None
    finally:
        hub.stop(name)
    assert hub.server(name) is None


def test_failed_spawn_is_reported_not_waited_out(local_hub: LocalHub) -> None:
    name, hub = _user(local_hub)
    with pytest.raises(HubError, match="spawn failed"):
        hub.start(name, "", {"profile": "broken"})
        hub.wait_ready(name, "", timeout=60)
    assert hub.server(name) is None


def test_verifier_named_servers_across_nodes_flags_missing_gpu(local_hub: LocalHub, figures_table) -> None:
    name, _ = _user(local_hub)
    token = local_hub.new_user(name + "x")
    settings = Settings(
        hub_url=local_hub.url,
        token=token,
        profiles=[
            Profile("cpu", gpu=False, user_options={"node": "node-a"}),
            Profile("gpu", gpu=True, user_options={"node": "node-b"}),
        ],
        named_servers=True,
    )
    report = Verifier(HubClient(settings.hub_url, settings.token), settings).run()
    gap = frozenset({"GPU visible [gpu]"})
    figures_table("local hub, named servers (no GPU here: the verifier flags the GPU row)", report.table(gap))
    assert "| FAIL " in report.table(), "a real deploy's report says FAIL"

    # this machine has no GPU, so the GPU profile must be reported; nothing else may be
    assert report.problems == [
        "gpu: GPU profile but torch.cuda.is_available() is False "
        f"(torch {report.results[1].facts['torch']}, NVIDIA_VISIBLE_DEVICES=void)"
    ]
    cpu, gpu = report.results
    assert (cpu.node, gpu.node) == ("node-a", "node-b")
    assert cpu.facts["cuda_available"] is False and cpu.facts["torch"]
    assert cpu.facts["notebooks_dir"].endswith(f"/homes/{name}x/notebooks")
    assert list(gpu.read_others) == [cpu.saved_path]  # the gpu server read what the cpu server saved
    rows = {row.measure: row for row in report.rows}
    assert rows["notebook readable from another server"].ok is True
    assert "node-a, node-b" in rows["notebook readable from another server"].note
    assert rows["pod start [cpu]"].ok is True and rows["notebook save [gpu]"].ok is True
    assert rows["GPU visible [gpu]"].ok is False and rows["GPU visible [cpu]"].ok is True
    assert rows["image pull"].ok is None  # no kube context here
    # servers stopped and removed, probe files cleaned up
    hub = HubClient(settings.hub_url, settings.token)
    assert hub.server(name + "x", "verify-cpu") is None and hub.server(name + "x", "verify-gpu") is None


def test_verifier_default_server_one_at_a_time(local_hub: LocalHub, figures_table) -> None:
    name, hub = _user(local_hub)
    settings = Settings(
        hub_url=local_hub.url,
        token=hub.token,
        profiles=[Profile("small"), Profile("large", user_options={"node": "node-b"}), Profile("broken")],
    )
    report = Verifier(hub, settings).run()
    figures_table("local hub, default server", report.table())
    assert len(report.problems) == 1 and report.problems[0].startswith("broken: did not start: ")
    small, large, broken = report.results
    assert small.node == "local-node" and large.node == "node-b"
    assert list(large.read_others) == [small.saved_path]
    assert broken.start_s is None and not broken.facts
    assert hub.server(name) is None


def test_default_server_already_running_is_a_finding(local_hub: LocalHub) -> None:
    name, hub = _user(local_hub)
    hub.start(name, "", {"profile": "mine"})
    hub.wait_ready(name, "", timeout=120)
    try:
        settings = Settings(hub_url=local_hub.url, token=hub.token, profiles=[Profile("cpu")])
        report = Verifier(hub, settings).run()
        assert report.problems == [
            f"cpu: {name}'s default server is already running: stop it (or use a dedicated test user)"
        ]
        assert hub.server(name)["ready"] is True  # a user's running server is left alone
    finally:
        hub.stop(name)
