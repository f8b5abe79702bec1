"""The progress API: plain start/end lines without a terminal, rich bars on one, and a console that
shows Spotcast's lines but not library chatter."""

import io
import logging
import warnings
from pathlib import Path

import pytest
from rich.console import Console

from forecasting import console, progress


def _terminal() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=True, width=120), out


def test_without_a_display_a_task_logs_one_start_and_one_end_line(caplog):
    caplog.set_level(logging.DEBUG, logger="spotcast")
    with progress.task("training member 1/3", total=3) as step:
        for epoch in range(3):
            step.advance(detail=f"loss {1 / (epoch + 1):.2f}")

    info = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert info[0] == "training member 1/3 …"
    assert info[1].startswith("training member 1/3: done 3/3 in ")
    assert len(info) == 2
    debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert debug == [
        "training member 1/3: 1/3 (loss 1.00)",
        "training member 1/3: 2/3 (loss 0.50)",
        "training member 1/3: 3/3 (loss 0.33)",
    ]


def test_a_task_left_by_an_error_says_where_it_stopped(caplog):
    caplog.set_level(logging.INFO, logger="spotcast")
    with pytest.raises(RuntimeError), progress.task("backtest origins", total=10) as step:
        step.advance(4)
        raise RuntimeError("boom")
    assert caplog.records[-1].getMessage().startswith("backtest origins: stopped at 4/10 after ")


def test_track_yields_every_item_and_counts_them(caplog):
    caplog.set_level(logging.INFO, logger="spotcast")
    assert list(progress.track(iter("abc"), "pulls", total=3)) == ["a", "b", "c"]
    assert list(progress.track([1, 2], "origins")) == [1, 2]  # total from len()
    assert caplog.records[-1].getMessage().startswith("origins: done 2/2 in ")


def test_on_a_terminal_tasks_show_as_bars_that_leave_only_their_end_line(caplog):
    caplog.set_level(logging.INFO, logger="spotcast")
    terminal, out = _terminal()
    with progress.console_display(terminal):
        with progress.task("training member 2/3", total=2) as step:
            step.advance()
            assert progress._display is not None and progress._display.live.is_started
            step.advance()
        assert not progress._display.live.is_started  # between tasks nothing redraws
    assert progress._display is None
    assert "training member 2/3" in out.getvalue() and "\x1b[" in out.getvalue()  # drawn as a bar
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0].startswith("training member 2/3: done 2/2 in ")  # no start line: the bar shows it


def test_without_a_display_a_long_task_says_how_far_it_is_now_and_then(caplog, monkeypatch):
    caplog.set_level(logging.INFO, logger="spotcast")
    monkeypatch.setattr(progress, "PLAIN_INTERVAL_S", 0.0)  # every advance is "a while" later
    with progress.task("backfill pulls", total=2) as step:
        step.advance(detail="1 landed, 0 failed")
        step.advance(detail="1 landed, 1 failed")

    info = [r.getMessage() for r in caplog.records]
    assert info[:3] == [
        "backfill pulls …",
        "backfill pulls: 1/2 (1 landed, 0 failed)",
        "backfill pulls: 2/2 (1 landed, 1 failed)",
    ]
    assert info[3].startswith("backfill pulls: done 2/2 in ") and info[3].endswith(" (1 landed, 1 failed)")


def test_a_step_without_a_total_ends_with_how_long_it_took(caplog):
    caplog.set_level(logging.INFO, logger="spotcast")
    with progress.task("loading the model deepar-1"):
        pass
    assert caplog.records[-1].getMessage().startswith("loading the model deepar-1: done in ")


def test_a_backfill_on_a_terminal_shows_a_bar_of_pulls_landed_and_failed(
    make_settings, replay_source, httpserver, monkeypatch, as_of, caplog
):
    """A real backfill of the small replay history (NO1, NO2 prices) beside an ENTSO-E feed that is
    down: on a terminal the pulls are one bar, done/total, and its end line counts both."""
    from forecasting.config import TOKEN_ENV
    from forecasting.jobs.ingest import backfill

    caplog.set_level(logging.INFO, logger="spotcast")
    monkeypatch.setenv(TOKEN_ENV, "test-token-0000")
    httpserver.expect_request("/api").respond_with_data("Service Unavailable", status=503)
    settings = make_settings(
        feeds={
            "replay": {"kind": "replay", "source": str(replay_source), "series": ["price_da"]},
            "entsoe": {"kind": "entsoe", "base_url": httpserver.url_for("/api"), "series": ["load_actual"]},
        }
    )
    terminal, out = _terminal()

    with progress.console_display(terminal):
        report = backfill(settings, as_of=as_of)

    assert len(report.outcomes) == 4
    shown = out.getvalue()
    assert "backfill pulls" in shown and "━" in shown and "/4" in shown  # the bar, drawn
    assert "\x1b[" in shown  # with a terminal's control sequences (redrawn, then removed)
    end = [r.getMessage() for r in caplog.records if r.getMessage().startswith("backfill pulls: done")]
    assert len(end) == 1 and end[0].endswith("(2 landed, 2 failed)")


def test_only_one_display_at_a_time():
    terminal, _ = _terminal()
    with progress.console_display(terminal), pytest.raises(RuntimeError), progress.console_display(terminal):
        pass


@pytest.fixture
def root_logging():
    """Restore the root logger's handlers and levels that `console.configure` changes; Prefect's task
    run logger starts unset, as in a fresh process (a flow run earlier in this one sets it)."""
    root, task_runs = logging.getLogger(), logging.getLogger("prefect.task_runs")
    saved = (root.handlers[:], root.level, logging.getLogger("spotcast").level, task_runs.level)
    task_runs.setLevel(logging.NOTSET)
    yield
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    logging.getLogger("spotcast").setLevel(saved[2])
    task_runs.setLevel(saved[3])
    logging.captureWarnings(False)


@pytest.mark.usefixtures("root_logging")
@pytest.mark.parametrize("verbose", [False, True])
def test_console_shows_own_lines_and_hides_library_chatter_unless_verbose(verbose):
    terminal, out = _terminal()
    console.configure(verbose, terminal)
    logging.getLogger("spotcast.forecast").info("issued the forecast")
    logging.getLogger("spotcast.forecast").debug("read 9000 rows")
    logging.getLogger("prefect.task_runs").info("Finished in state Completed()")
    logging.getLogger("lightning.pytorch.utilities.rank_zero").info("💡 Tip: try installing litlogger")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("`fn` is deprecated", DeprecationWarning, stacklevel=1)
    logging.getLogger("prefect.flow_runs").error("Finished in state Failed('NoChampion')")
    logging.getLogger("fsspec").error("cannot reach the object store")

    shown = out.getvalue()
    assert "issued the forecast" in shown
    assert "cannot reach the object store" in shown  # other libraries' errors always show
    hidden = ["read 9000 rows", "Finished in state", "litlogger", "is deprecated"]
    assert all((text in shown) == verbose for text in hidden)


@pytest.mark.usefixtures("root_logging")
def test_the_run_log_file_holds_everything_and_lands_in_the_lake(tmp_path):
    from forecasting.lake.files import LakeFS

    terminal, out = _terminal()
    console.configure(False, terminal)
    lake = LakeFS.open(str(tmp_path / "lake"))
    with pytest.raises(ValueError), console.run_log(lake, "forecast") as path:
        logging.getLogger("spotcast.forecast").debug("read 9000 rows")
        logging.getLogger("prefect.task_runs").info("Finished in state Completed()")
        raise ValueError("no champion")

    assert path.startswith(f"{tmp_path}/lake/logs/") and path.endswith(".log")
    text = Path(path).read_text(encoding="utf-8")
    assert "DEBUG   spotcast.forecast: read 9000 rows" in text
    assert "INFO    prefect.task_runs: Finished in state Completed()" in text
    assert "ValueError: no champion" in text  # the traceback, for the person on call
    assert "read 9000 rows" not in out.getvalue()


@pytest.mark.usefixtures("root_logging")
def test_the_run_log_of_an_object_store_lake_is_uploaded_when_the_run_ends():
    from forecasting.lake.files import LakeFS

    terminal, _ = _terminal()
    console.configure(False, terminal)
    lake = LakeFS.open("memory://progress-test/lake")
    with console.run_log(lake, "daily") as path:
        logging.getLogger("spotcast.daily").info("landed 24 rows")
    assert b"landed 24 rows" in lake.fs.cat_file(path)
