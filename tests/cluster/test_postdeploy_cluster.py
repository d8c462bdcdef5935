"""Post-deploy verification against the deployed hub: `pytest -m cluster tests/cluster`.

Skipped unless GPU_JUPYTERHUB_HUB_URL and GPU_JUPYTERHUB_HUB_TOKEN are set (see postdeploy.py for all
settings). Prints a table of measured figures against the targets at the end of the run.
"""

from __future__ import annotations

import pytest
from hubclient import HubClient
from postdeploy import Kube, Settings, Verifier

SETTINGS = Settings.from_env()

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.skipif(
        SETTINGS is None,
        reason="no cluster configured: set GPU_JUPYTERHUB_HUB_URL and GPU_JUPYTERHUB_HUB_TOKEN "
        "(and GPU_JUPYTERHUB_PROFILES or GPU_JUPYTERHUB_PROFILES_FILE)",
    ),
]


def test_deployed_hub_meets_targets(figures_table) -> None:
    assert SETTINGS is not None
    hub = HubClient(SETTINGS.hub_url, SETTINGS.token, verify=SETTINGS.verify)
    kube = Kube.connect(SETTINGS.namespace, SETTINGS.kube_context)
    report = Verifier(hub, SETTINGS, kube).run()
    figures_table(f"deployed hub {SETTINGS.hub_url} (JupyterHub {hub.version()})", report.table())
    assert not report.problems, "\n".join(report.problems)
