"""A tampered or truncated model artifact, and a champion record that is not one: the champion loads
with one clear line naming what is wrong, never a raw traceback. Garbage files are written in the
artifact layout; no model is trained."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from fault_kit import AS_OF, Lake

from forecasting.cli import EXIT_ERROR
from forecasting.lake.files import CorruptFile
from forecasting.model import registry
from forecasting.model.artifact import FORMAT_VERSION, ArtifactError
from forecasting.model.pipeline import DeepARPipeline

MODEL_ID = "deepar-0123456789ab"


def metadata(zones: list[str]) -> dict:
    return {
        "format_version": FORMAT_VERSION,
        "model_id": MODEL_ID,
        "zones": dict.fromkeys(zones, "Europe/Oslo"),
        "covariates": ["load_da"],
        "covariate_features": [],
        "anchor_features": [],
        "calibration_from": "2023-01-01T00:00:00+00:00",
        "training_range": ["2023-01-01", "2023-05-01"],
        "training_data_hash": "0" * 64,
    }


def params(zones: list[str]) -> dict:
    values = DeepARPipeline(zones=dict.fromkeys(zones, "Europe/Oslo")).get_params()
    return json.loads(json.dumps(values, default=list))


def truncated(text: str) -> str:
    return text[: len(text) // 2]


def write_layout(folder: Path, zones: list[str], damage: str) -> None:
    """An artifact directory with every file in place: the preprocessing arrays and the network
    weights are always garbage; metadata.json or params.json is cut in half when asked (they are
    read first, so they fail first)."""
    (folder / "predictor" / "0").mkdir(parents=True)
    meta, parameters = json.dumps(metadata(zones)), json.dumps(params(zones))
    (folder / "metadata.json").write_text(truncated(meta) if damage == "metadata" else meta)
    (folder / "params.json").write_text(truncated(parameters) if damage == "params" else parameters)
    (folder / "preprocessing.npz").write_bytes(b"PK\x03\x04 truncated zip")  # "arrays": these and the weights
    for name in ("type.txt", "parameters.json", "prediction_net-state.pt"):
        (folder / "predictor" / "0" / name).write_bytes(b"\x80\x02 truncated weights")


@pytest.fixture
def champion_of(lake: Lake) -> Callable[[str], Path]:
    """Promote MODEL_ID (a run recorded by hand) with its artifact damaged as asked."""

    def make(damage: str) -> Path:
        settings = lake.settings
        (lake.root / "model_runs").mkdir(exist_ok=True)
        champion = {"model_id": MODEL_ID, "run_id": "r1", "promoted_at": "2023-06-01", "reason": "test"}
        (lake.root / "model_runs" / "champion.json").write_text(json.dumps(champion))
        folder = Path(registry.artifact_dir(settings, MODEL_ID))
        if damage != "missing":
            write_layout(folder, settings.zone_names, damage)
        return folder

    return make


@pytest.mark.parametrize("damage", ["metadata", "params", "arrays", "missing"])
def test_a_damaged_champion_artifact_fails_in_one_line_naming_it(
    lake: Lake, champion_of, damage: str
) -> None:
    folder = champion_of(damage)
    before = lake.hashes()

    with pytest.raises(ArtifactError) as failed:
        registry.load_champion(lake.fs, lake.settings)

    message = str(failed.value)
    assert "\n" not in message and str(folder) in message
    assert message.startswith(f"champion {MODEL_ID}") or message.startswith(str(folder))
    assert lake.hashes() == before


def test_a_champion_record_that_is_not_one_is_named(lake: Lake, champion_of) -> None:
    champion_of("arrays")
    record = lake.root / "model_runs" / "champion.json"
    record.write_text('{"model_id": "deepar-')

    with pytest.raises(CorruptFile, match=rf"corrupt lake file {record} \(Unterminated string"):
        registry.load_champion(lake.fs, lake.settings)


@pytest.mark.slow
def test_the_forecast_command_with_a_damaged_artifact_exits_1_in_one_line(
    lake: Lake, champion_of, spotcast
) -> None:
    folder = champion_of("arrays")
    before = lake.hashes()

    done = spotcast("forecast", "--config", str(lake.config), "--as-of", str(AS_OF))

    assert done.code == EXIT_ERROR
    assert done.message.startswith(
        f"spotcast: champion {MODEL_ID}: the model artifact {folder} is unreadable"
    )
    assert lake.hashes() == before  # no forecast stored


@pytest.mark.slow
def test_the_daily_run_lands_the_new_day_then_stops_in_one_line_at_a_damaged_artifact(
    lake: Lake, champion_of, spotcast
) -> None:
    folder = champion_of("params")
    before = lake.rows()

    done = spotcast("daily", "--config", str(lake.config), "--as-of", str(AS_OF))

    assert done.code == EXIT_ERROR
    assert done.message.startswith(f"spotcast: {folder / 'params.json'}: unreadable model artifact file")
    after = lake.rows()
    assert after["delivery_hour"].max() > before["delivery_hour"].max()  # the ingest landed first
    assert len(after.merge(before, on=list(before.columns))) == len(before)  # and changed nothing there
    assert not (lake.root / "forecasts").exists()
