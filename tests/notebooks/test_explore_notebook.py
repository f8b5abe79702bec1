"""notebooks/explore.ipynb runs top to bottom, offline: on a small lake built through the library
(backfill, train a tiny model, issue a forecast) it finds the model and the forecast and draws its
figures; on an empty lake it says what to run instead of failing.

The committed notebook is never executed in place: each test runs a copy with the parameters cell
replaced, in a kernel on this interpreter, with every Jupyter/IPython/Prefect home under tmp_path.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from nbclient import NotebookClient

from forecasting.config import Settings, load_settings
from spotcast_testing import issue_tiny_forecast, tiny_config

PROJECT_ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = PROJECT_ROOT / "notebooks" / "explore.ipynb"
ZONES = ("NO1", "NO2")
# A daily run's "now": Monday 14:00 in Oslo, after the 13:00 day-ahead release.
AS_OF = pd.Timestamp("2019-11-04 13:00", tz="UTC")
# Five months of history: enough windows for the tiny model, and the clock change of 2019-10-27.
HISTORY_START = "2019-06-01"
CELL_TIMEOUT_S = 300


def load_config(path: Path, folder: Path) -> Settings:
    settings = load_settings(path)
    assert settings.zone_names == list(ZONES)
    assert Path(settings.lake_root).is_relative_to(folder), "the test must not touch the project's lake"
    assert Path(settings.models_root).is_relative_to(folder)
    return settings


@pytest.fixture
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Prefect, IPython, Jupyter and matplotlib state under tmp_path (the kernel inherits it)."""
    home = tmp_path / "home"
    for variable, folder in {
        "PREFECT_HOME": "prefect",
        "IPYTHONDIR": "ipython",
        "JUPYTER_RUNTIME_DIR": "jupyter-runtime",
        "JUPYTER_DATA_DIR": "jupyter-data",
        "MPLCONFIGDIR": "matplotlib",
    }.items():
        (home / folder).mkdir(parents=True)
        monkeypatch.setenv(variable, str(home / folder))
    monkeypatch.setenv("DO_NOT_TRACK", "1")
    monkeypatch.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    return home


def run_notebook(config: Path, zone: str, workdir: Path) -> nbformat.NotebookNode:
    """Execute a copy of the notebook with CONFIG/ZONE injected; the copy is kept in `workdir`."""
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    parameters = next(c for c in notebook.cells if c.cell_type == "code")
    assert "parameters" in parameters.metadata.get("tags", [])
    parameters.source = f"CONFIG = {str(config)!r}\nZONE = {zone!r}"
    # which interpreter the kernel really runs (must be this venv's, where the project is installed)
    notebook.cells.append(nbformat.v4.new_code_cell("import sys\nprint('kernel:', sys.executable)"))
    client = NotebookClient(
        notebook,
        kernel_name="python3",
        timeout=CELL_TIMEOUT_S,
        startup_timeout=120,
        resources={"metadata": {"path": str(workdir)}},
    )
    try:
        client.execute()  # raises CellExecutionError (with the traceback) when a cell fails
    finally:
        nbformat.write(notebook, workdir / "explore.executed.ipynb")
    assert notebook.cells[-1].outputs[0]["text"].strip() == f"kernel: {sys.executable}"
    return notebook


def cell_with(notebook: nbformat.NotebookNode, snippet: str) -> nbformat.NotebookNode:
    cells = [c for c in notebook.cells if c.cell_type == "code" and snippet in c.source]
    assert len(cells) == 1, f"expected one code cell containing {snippet!r}, found {len(cells)}"
    return cells[0]


def texts(cell: nbformat.NotebookNode) -> str:
    """Everything a cell printed or displayed as text (stdout, text/plain, text/markdown)."""
    parts = []
    for output in cell.outputs:
        assert output.output_type != "error", output
        if output.output_type == "stream":
            parts.append(output.text)
        elif "data" in output:
            parts += [output.data.get(kind, "") for kind in ("text/plain", "text/markdown")]
    return "\n".join(parts)


def images(cell: nbformat.NotebookNode) -> int:
    return sum("image/png" in output.get("data", {}) for output in cell.outputs)


def test_committed_notebook_has_parameters_and_no_outputs() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    assert notebook.metadata.kernelspec.name == "python3"
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert code[0].metadata.get("tags") == ["parameters"]
    assert re.search(r"^CONFIG = None\b", code[0].source, flags=re.MULTILINE)
    assert re.search(r'^ZONE = "NO1"$', code[0].source, flags=re.MULTILINE)
    assert all(c.outputs == [] and c.execution_count is None for c in code), "clear the outputs"


@pytest.mark.slow
def test_explore_notebook_runs_on_a_small_lake(tmp_path: Path, isolated_env: Path) -> None:
    config = tiny_config(tmp_path, list(ZONES), HISTORY_START)
    load_config(config, tmp_path)
    issued = issue_tiny_forecast(config, AS_OF)
    model_id = issued.inputs["model_id"].iloc[0]

    notebook = run_notebook(config, "NO1", tmp_path)

    everything = "\n".join(texts(c) for c in notebook.cells if c.cell_type == "code")
    for hint in ("no model has been promoted", "holds no forecast", "no market data"):
        assert hint not in everything
    assert "price_da" in texts(cell_with(notebook, "newest_hours(lake)"))
    assert images(cell_with(notebook, "SHOWN = {")) == 1
    dst = texts(cell_with(notebook, "expected_hours"))
    assert "2019-10-27" in dst and "1 clock-change days, 1 with the expected hour count" in dst
    hydro = cell_with(notebook, "hydro_chart_figure(")  # the bundled NVE history, replayed
    assert images(hydro) == 1
    # as of Monday 2019-11-04 the newest published week is 2019-W43 (out on Wednesday 2019-10-30)
    assert "2019-W43" in texts(hydro) and "deviation_twh" in texts(hydro) and "NO2" in texts(hydro)

    assert model_id in texts(cell_with(notebook, "load_champion(lake, settings)"))
    pca = cell_with(notebook, "explained_variance_ratio_")
    assert images(pca) == 1
    assert "wind_onshore_da" in texts(pca) and "holiday" in texts(pca)

    fan = cell_with(notebook, "fan_chart_figure(")
    assert images(fan) == 1
    fan_text = texts(fan)
    assert f"issue {issued.issue_date}" in fan_text
    assert "feed_status" in fan_text and "hours_extended" in fan_text  # the input status table

    products = cell_with(notebook, "product_chart_figure(")
    assert images(products) == 1
    product_text = texts(products)
    assert "2019-W46" in product_text and "BOM 2019-11" in product_text  # weeks, and the running month
    assert "no forward given" in product_text

    track = texts(cell_with(notebook, "score_track_record("))  # the validation issues of the training
    assert "model, raw deciles" in track and "coverage_10_90" in track

    # no stored backtest: the backtest section shows the champion's own track record, not baselines only
    metrics = texts(cell_with(notebook, "render_markdown("))
    assert f"track record of {model_id}" in metrics and "delivered issues" in metrics
    assert "seasonal-naive baselines" not in metrics
    for column in ("rMAE", "CRPS", "cover 10–90", "days 1-7", "days 15-28", "model, raw deciles", "seasonal_naive"):
        assert column in metrics
    assert images(cell_with(notebook, "by horizon week: {source}")) == 1


@pytest.mark.slow
def test_explore_notebook_scores_the_baselines_without_a_model(tmp_path: Path, isolated_env: Path) -> None:
    """History but no champion (so no track record): the backtest section runs the two baselines."""
    from forecasting.jobs.ingest import backfill

    config = tiny_config(tmp_path, list(ZONES), HISTORY_START)
    assert backfill(load_config(config, tmp_path), as_of=AS_OF).ok

    notebook = run_notebook(config, "NO1", tmp_path)

    assert "`spotcast train`" in texts(cell_with(notebook, "load_champion(lake, settings)"))
    metrics = texts(cell_with(notebook, "render_markdown("))
    assert "no delivered track record of a champion" in metrics
    assert "seasonal-naive baselines, 4 weekly issues" in metrics
    for column in ("rMAE", "CRPS", "cover 10–90", "days 1-7", "days 15-28", "seasonal_naive_empirical"):
        assert column in metrics
    assert "model, raw deciles" not in metrics
    assert images(cell_with(notebook, "by horizon week: {source}")) == 1


@pytest.mark.slow
def test_explore_notebook_explains_an_empty_lake(tmp_path: Path, isolated_env: Path) -> None:
    config = tiny_config(tmp_path, list(ZONES), HISTORY_START)
    load_config(config, tmp_path)

    notebook = run_notebook(config, "NO2", tmp_path)

    everything = "\n".join(texts(c) for c in notebook.cells if c.cell_type == "code")
    for hint in ("`spotcast backfill`", "`spotcast train`", "`spotcast daily`"):
        assert hint in everything
    assert "No hydro balance in the lake" in texts(cell_with(notebook, "hydro_chart_figure("))
    assert sum(images(c) for c in notebook.cells if c.cell_type == "code") == 0
