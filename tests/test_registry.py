"""The registry's promotion history on the lake's as-of clock: a replay at T gets the model that was
champion at T, never one trained on data published after T."""

import json

import pandas as pd
import pytest
from spotcast_testing import detached_env

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
    import subprocess
    import sys

    from spotcast_testing import tiny_config

    config = tiny_config(tmp_path, ["NO1"], "2023-01-01")
    lake = LakeFS.open(str(tmp_path / "lake"))
    registry.promote(lake, _run(lake, "deepar-summer", "2023-06-01 12:00"), "first", _at("2023-06-01 12:00"))
    env = detached_env(tmp_path / "prefect")

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


# --- `spotcast models list` -----------------------------------------------------------------------


@pytest.fixture
def listed(tmp_path):
    """A configuration whose registry holds six runs recorded by the registry itself: the first
    model, three tuning trials of one study, the retrained best trial (promoted) and a trial of
    another study; the triggers and metrics the real jobs record."""
    from spotcast_testing import write_config

    config = write_config(tmp_path / "c.toml", lake_root=str(tmp_path / "lake"))
    lake = LakeFS.open(str(tmp_path / "lake"))
    settings = load_settings(config)
    at = _at("2023-06-01 12:00")

    def run(model_id: str, crps: float, tags: dict[str, str]) -> str:
        metrics = {"crps": crps, "rmae": crps / 9, "coverage_10_90": 0.78, "naive_empirical_crps": 9.9}
        return registry.record_run(
            lake, settings, TrainedModel(model_id, "2023-06-01"), None, metrics, tags, 60.0, at
        )

    first = run("deepar-first", 8.4, {"trigger": "daily: champion of an older format"})
    registry.promote(lake, first, "first model", at)
    study = "deepar-a-study-name-long-enough-to-be-cut-in-a-narrow-column"
    trials = [
        run(f"deepar-t{n}", 8 + n / 10, {"trigger": "tune", "study": study, "trial": str(n)})
        for n in (0, 1, 12)
    ]
    best = run("deepar-best", 7.8, {"trigger": "tune-best", "study": study, "trial": "0"})
    registry.promote(lake, best, "beats champion", at)
    run("deepar-other", 8.1, {"trigger": "tune", "study": "another", "trial": "3"})
    return config, {"first": first, "trials": trials, "best": best}


def _models_list(config, *args: str, capsys) -> tuple[int, str, str]:
    from forecasting.cli import main

    code = main(["models", "list", "--config", str(config), *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_models_list_fits_120_columns_and_marks_the_champion(listed, capsys):
    config, runs = listed

    code, out, _ = _models_list(config, capsys=capsys)

    assert code == 0
    lines = out.rstrip("\n").splitlines()
    assert max(len(line) for line in lines) <= 120, out
    assert lines[0].split() == [
        "run",
        "trained",
        "(UTC)",
        "data",
        "as",
        "of",
        "(UTC)",
        "trigger",
        "crps",
        "rmae",
        "cover",
    ]
    assert "daily: champion of an older…" in out  # a long trigger is cut (--wide shows it whole)
    ids = [runs["first"], *runs["trials"], runs["best"]]
    rows = {run_id: line for line in lines[1:-1] for run_id in ids if run_id in line}
    assert rows[runs["best"]].startswith("*  ")  # the champion
    assert rows[runs["first"]].startswith("+  ")  # the champion before
    assert all(rows[t].startswith("   ") for t in runs["trials"])
    assert "tune #12" in rows[runs["trials"][2]] and "tune-best #0" in rows[runs["best"]]
    assert "7.800" in rows[runs["best"]]
    assert lines[-1].startswith(f"* champion: run {runs['best']} from 2023-06-01 12:00 UTC")


def test_models_list_where_is_repeatable_and_reads_tags(listed, capsys):
    config, runs = listed

    _, out, _ = _models_list(
        config,
        "--where",
        "study=deepar-a-study-name-long-enough-to-be-cut-in-a-narrow-column",
        "--where",
        "trigger=tune",
        "--where",
        "trial<10",
        capsys=capsys,
    )

    table, legend = out.rstrip("\n").splitlines()[1:-1], out.rstrip("\n").splitlines()[-1]
    # trial 12 is not < 10 (compared as numbers, not text); the best trial's retraining is tune-best
    assert [line.split()[0] for line in table] == runs["trials"][:2]
    assert legend.endswith(", not listed")  # the champion is not among them


def test_models_list_where_of_an_unknown_name_says_what_there_is(listed, capsys):
    config, _ = listed

    code, _, err = _models_list(config, "--where", "stdy=x", capsys=capsys)

    assert code == 2
    assert "no metric, column or tag 'stdy'" in err and "study" in err


def test_models_list_json_parses_with_tags_metrics_and_the_champion(listed, capsys):
    config, runs = listed

    code, out, _ = _models_list(config, "--json", "--sort", "crps", capsys=capsys)

    assert code == 0
    records = json.loads(out)
    assert records[0]["run_id"] == runs["best"]  # lowest CRPS first
    by_id = {r["run_id"]: r for r in records}
    assert [r["run_id"] for r in records if r["champion"]] == [runs["best"]]
    assert by_id[runs["first"]]["was_champion"] and not by_id[runs["first"]]["champion"]
    assert by_id[runs["trials"][2]]["tags"] == {
        "trigger": "tune",
        "study": "deepar-a-study-name-long-enough-to-be-cut-in-a-narrow-column",
        "trial": "12",
    }
    assert by_id[runs["best"]]["metrics"]["crps"] == 7.8
    assert by_id[runs["best"]]["params"] == {"max_epochs": 1}
    assert by_id[runs["best"]]["as_of"] == "2023-06-01T12:00:00+00:00"


def test_models_list_wide_shows_every_tag_whole(listed, capsys):
    config, _ = listed

    _, out, _ = _models_list(config, "--wide", capsys=capsys)

    header = out.splitlines()[0].split()
    assert {
        "run_id",
        "model_id",
        "as_of",
        "crps",
        "naive_empirical_crps",
        "trigger",
        "study",
        "trial",
    } <= set(header)
    assert "deepar-a-study-name-long-enough-to-be-cut-in-a-narrow-column" in out
    assert "daily: champion of an older format" in out


def test_models_list_with_an_unreadable_promotion_history_lists_the_runs_unmarked(listed, tmp_path, capsys):
    config, runs = listed
    (tmp_path / "lake" / "model_runs" / "promotions.json").write_text("{not json")

    code, out, err = _models_list(config, capsys=capsys)

    assert code == 3  # finished degraded: a lake file could not be read
    assert "corrupt lake file" in err and "name the champion again" in err
    assert runs["best"] in out and not any(line.startswith(("*", "+")) for line in out.splitlines()[1:-1])
    assert out.rstrip().endswith("no champion marked: the promotion history cannot be read (said above)")
