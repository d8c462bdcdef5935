"""Where the Release takes the chart from; a chart on disk is checked before anything is registered."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from components.core.chart import ChartSource, chart_source
from components.core.config import ChartConfig, ConfigError
from components.core.config_load import parse_config
from tests.conftest import BASE_CONFIG


def chart_dir(root: Path, name: str = "jupyterhub", version: str = "4.4.0") -> Path:
    d = root / name
    d.mkdir(parents=True)
    (d / "Chart.yaml").write_text(f"apiVersion: v2\nname: {name}\nversion: {version}\n")
    return d


def chart_tgz(root: Path, name: str = "jupyterhub", version: str = "4.4.0") -> Path:
    path = root / f"{name}-{version}.tgz"
    data = f"apiVersion: v2\nname: {name}\nversion: {version}\n".encode()
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo(f"{name}/Chart.yaml")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return path


def test_repository_and_oci_sources(tmp_path: Path) -> None:
    assert chart_source(ChartConfig(), tmp_path) == ChartSource(
        chart="jupyterhub", version="4.4.0", repository="https://hub.jupyter.org/helm-chart/"
    )
    oci = ChartConfig(oci="oci://harbor.lab.example/charts/jupyterhub", version="4.3.0")
    assert chart_source(oci, tmp_path) == ChartSource(
        chart="oci://harbor.lab.example/charts/jupyterhub", version="4.3.0", repository=None
    )


def test_a_chart_directory_or_package_on_disk(tmp_path: Path) -> None:
    d = chart_dir(tmp_path / "charts")
    assert chart_source(ChartConfig(path=str(d)), tmp_path) == ChartSource(chart=str(d), version=None, repository=None)
    # relative to the project directory
    assert chart_source(ChartConfig(path="charts/jupyterhub"), tmp_path).chart == str(d)
    tgz = chart_tgz(tmp_path)
    assert chart_source(ChartConfig(path=tgz.name), tmp_path).chart == str(tgz)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda p: chart_dir(p, version="4.3.0"),
            "holds chart 'jupyterhub' version '4.3.0'; expected 'jupyterhub' version '4.4.0'",
        ),
        (lambda p: chart_dir(p, name="binderhub"), "holds chart 'binderhub'"),
        (lambda p: chart_tgz(p, version="3.3.8"), "version '3.3.8'"),
        (lambda p: p / "nowhere", "does not exist"),
        (lambda p: (p / "notes.txt").write_text("x") and p / "notes.txt", "neither a chart directory nor a .tgz"),
        (lambda p: (p / "empty").mkdir() or p / "empty", "cannot read the chart"),
    ],
)
def test_a_wrong_chart_on_disk_is_a_config_error_naming_the_key(tmp_path: Path, make, message: str) -> None:
    path = make(tmp_path)
    with pytest.raises(ConfigError) as err:
        chart_source(ChartConfig(path=str(path)), tmp_path)
    assert "gpu-jupyterhub:chart.path" in str(err.value)
    assert message in str(err.value)


def test_path_and_oci_together_are_rejected() -> None:
    raw = {**BASE_CONFIG, "chart": {"path": "charts/jupyterhub", "oci": "oci://h/c/jupyterhub"}}
    with pytest.raises(ConfigError, match=r"gpu-jupyterhub:chart: .*at most one of path"):
        parse_config(raw)
