"""The registry's promotion history on the lake's as-of clock: a replay at T gets the model that was
champion at T, never one trained on data published after T."""

import json

import pandas as pd
import pytest

from forecasting.config import load_settings
from forecasting.errors import UsageError
from forecasting.lake.files import LakeFS
from forecasting.model import registry


class TrainedModel:
    """What the registry records of a fitted pipeline (the attributes `record_run` reads)."""

    def __init__(self, model_id: str, train_end: str) -> None:
        self.model_id_ = model_id
        self.zones_ = {"NO1": "Europe/Oslo"}
        self.training_range_ = (pd.Timestamp("2020-01-01", tz="UTC"), pd.Timestamp(train_end, tz="UTC"))
        self.training_data_hash_ = f"hash-{model_id}"

    def get_params(self) -> dict[str, object]:
        return {"max_epochs": 1}


@pytest.fixture
def lake(tmp_path) -> LakeFS:
    return LakeFS.open(str(tmp_path / "lake"))


def _run(lake: LakeFS, model_id: str, as_of: str) -> str:
    settings = load_settings(lake_root=lake.root)
    model = TrainedModel(model_id, as_of)
    stamp = pd.Timestamp(as_of, tz="UTC")
    return registry.record_run(lake, settings, model, f"/models/{model_id}", {"crps": 1.0}, {}, 60.0, stamp)


def _at(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def test_a_replay_gets_the_model_that_was_champion_at_its_instant(lake):
    spring = _run(lake, "deepar-spring", "2023-03-01 12:00")
    summer = _run(lake, "deepar-summer", "2023-06-01 12:00")
    registry.promote(lake, spring, "first model", _at("2023-03-01 12:00"))
    registry.promote(lake, summer, "beats champion", _at("2023-06-01 12:00"))

    assert registry.champion(lake, _at("2023-04-15")).model_id == "deepar-spring"
    assert registry.champion(lake, _at("2023-06-01 12:00")).model_id == "deepar-summer"
    assert registry.champion(lake).model_id == "deepar-summer"  # no instant: the newest


def test_a_replay_before_every_model_s_data_is_refused_with_what_to_do(lake):
    registry.promote(lake, _run(lake, "deepar-summer", "2023-06-01 12:00"), "first", _at("2023-06-01 12:00"))

    with pytest.raises(registry.NoChampion) as refused:
        registry.champion(lake, _at("2023-03-01"))
    message = str(refused.value)
    assert "no model was champion at 2023-03-01 00:00 UTC" in message
    assert "spotcast train --as-of 2023-03-01T00:00Z" in message


def test_training_in_the_past_does_not_displace_the_current_champion(lake):
    summer = _run(lake, "deepar-summer", "2023-06-01 12:00")
    registry.promote(lake, summer, "first model", _at("2023-06-01 12:00"))
    spring = _run(lake, "deepar-spring", "2023-03-01 12:00")  # `spotcast train --as-of 2023-03-01T12:00`
    registry.promote(lake, spring, "first model by then", _at("2023-03-01 12:00"))

    assert registry.champion(lake).model_id == "deepar-summer"
    assert registry.champion(lake, _at("2023-03-02")).model_id == "deepar-spring"
    assert [p.model_id for p in registry.promotions(lake)] == ["deepar-summer", "deepar-spring"]


def test_a_promotion_by_hand_counts_from_the_instant_it_is_made(lake):
    spring = _run(lake, "deepar-spring", "2023-03-01 12:00")
    summer = _run(lake, "deepar-summer", "2023-06-01 12:00")
    registry.promote(lake, summer, "first model", _at("2023-06-01 12:00"))
    registry.promote(lake, spring, "promoted by hand", _at("2023-06-20 12:00"))

    assert registry.champion(lake, _at("2023-06-10")).model_id == "deepar-summer"
    assert registry.champion(lake).model_id == "deepar-spring"


def test_a_model_cannot_be_champion_before_its_data_was_published(lake):
    summer = _run(lake, "deepar-summer", "2023-06-01 12:00")
    with pytest.raises(UsageError, match="trained on data published up to 2023-06-01 12:00"):
        registry.promote(lake, summer, "too early", _at("2023-05-01"))
    assert registry.promotions(lake) == []


def test_unknown_run_is_a_clear_error(lake):
    with pytest.raises(UsageError, match="no training run 'nope'"):
        registry.promote(lake, "nope", "by hand", _at("2023-06-01"))


def test_an_empty_registry_says_to_train(lake):
    with pytest.raises(registry.NoChampion, match="no model has been promoted yet: run `spotcast train`"):
        registry.champion(lake, _at("2023-06-01"))


def test_a_lake_of_the_single_champion_file_reads_it_as_its_first_promotion(lake):
    run_id = _run(lake, "deepar-old", "2023-06-01 12:00")
    old = {
        "model_id": "deepar-old",
        "run_id": run_id,
        "promoted_at": "2024-01-01T00:00:00+00:00",
        "reason": "first",
    }
    lake.fs.pipe_file(lake.path("model_runs", "champion.json"), json.dumps(old).encode())

    assert registry.champion(lake, _at("2023-06-02")).model_id == "deepar-old"  # from the run's as-of on
    with pytest.raises(registry.NoChampion):
        registry.champion(lake, _at("2023-05-01"))
    registry.promote(lake, run_id, "again", _at("2023-07-01"))
    assert [p.reason for p in registry.promotions(lake)] == ["first", "again"]


@pytest.mark.slow
def test_forecast_as_of_before_every_model_refuses_and_says_how_to_train_one(tmp_path):
    import os
    import subprocess
    import sys

    from spotcast_testing import tiny_config

    config = tiny_config(tmp_path, ["NO1"], "2023-01-01")
    lake = LakeFS.open(str(tmp_path / "lake"))
    registry.promote(lake, _run(lake, "deepar-summer", "2023-06-01 12:00"), "first", _at("2023-06-01 12:00"))
    env = dict(os.environ, PREFECT_HOME=str(tmp_path / "prefect"), DO_NOT_TRACK="1")
    env.pop("PREFECT_API_URL", None)

    command = [
        sys.executable,
        "-m",
        "forecasting.cli",
        "forecast",
        "--config",
        str(config),
        "--as-of",
        "2023-03-01",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)

    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("spotcast: no model was champion at 2023-03-01 00:00 UTC")
    assert last.endswith("spotcast train --as-of 2023-03-01T00:00Z")
    assert "Traceback" not in done.stderr  # the traceback is in the run's log file, not on the console
