"""The ENTSO-E XML parser on real-format documents (tests/fixtures/entsoe, see its README)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from forecasting.feeds.base import MalformedResponse
from forecasting.feeds.entsoe_xml import (
    GL_DOCUMENT,
    PUBLICATION_DOCUMENT,
    Acknowledgement,
    MarketDocument,
    hourly_values,
    parse_document,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "entsoe"


def body(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def document(name: str) -> MarketDocument:
    parsed = parse_document(body(name), name)
    assert isinstance(parsed, MarketDocument)
    return parsed


def hourly(name: str) -> pd.Series:
    return hourly_values(document(name).time_series)


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def test_created_date_time_is_read_as_utc() -> None:
    parsed = document("BE_60M.xml")
    assert parsed.kind == PUBLICATION_DOCUMENT
    assert parsed.created_at == utc("2024-10-07 14:34:54")


def test_time_series_keep_their_domains() -> None:
    (series,) = document("BE_60M.xml").time_series
    be = "10YBE----------2"
    assert series.domains == {"in_Domain.mRID": be, "out_Domain.mRID": be}


def test_gl_document_quantities_parse() -> None:
    parsed = document("NO1_A65_2023-01-16_load_da.xml")
    values = hourly_values(parsed.time_series)
    assert parsed.kind == GL_DOCUMENT
    assert len(values) == 24
    assert values[utc("2023-01-15 23:00")] == 4427
    assert values[utc("2023-01-16 22:00")] == 4843


def test_classification_position_1_wins_over_position_2() -> None:
    # Position 2 (listed first in the file) carries other prices: 115.03 in the first hour.
    values = hourly("NO1_A44_2023-06-20_sequence_1_and_2.xml")
    assert len(values) == 24
    assert values[utc("2023-06-19 22:00")] == 78.85


def test_finest_resolution_wins_when_two_resolutions_cover_the_same_hours() -> None:
    values = hourly("NO1_A44_2023-06-21_PT60M_and_PT15M.xml")
    assert len(values) == 24
    assert values.index.is_unique
    # PT60M says 78.53; the PT15M quarters 78.53, 78.1, 77.66, 77.23 average to 77.88.
    assert values[utc("2023-06-20 22:00")] == pytest.approx(77.88)


def test_pt60m_to_pt15m_switch_gives_one_value_per_hour() -> None:
    values = hourly("NO1_A44_2023-06-29_PT60M_to_PT15M.xml")
    assert len(values) == 48
    assert values.index.is_unique
    assert values[utc("2023-06-28 22:00")] == 70.6  # PT60M day
    assert values[utc("2023-06-29 22:00")] == 69.01  # PT15M A03 day: positions 2-4 repeat 1
    assert values[utc("2023-06-29 23:00")] == 68.67


def test_acknowledgement_gives_reason_code_and_text() -> None:
    parsed = parse_document(body("acknowledgement_999_no_matching_data.docs_example.xml"), "ack")
    assert parsed == Acknowledgement(code="999", text="No matching data found")


def test_harmless_dtd_is_refused_too() -> None:
    # ENTSO-E never sends a DTD, so none is accepted: no entity trick can slip through.
    xml = body("BE_60M.xml").replace(
        b'<?xml version="1.0" encoding="utf-8"?>',
        b'<?xml version="1.0" encoding="utf-8"?><!DOCTYPE Publication_MarketDocument>',
    )
    with pytest.raises(MalformedResponse, match="hostile XML"):
        parse_document(xml, "dtd")


def test_point_position_beyond_the_period_is_malformed() -> None:
    xml = body("BE_60M.xml").replace(b"<position>24</position>", b"<position>25</position>")
    with pytest.raises(MalformedResponse, match=r"outside 1\.\.24"):
        parse_document(xml, "position")


def test_unsupported_resolution_is_malformed() -> None:
    xml = body("BE_60M.xml").replace(b"PT60M", b"P1D")
    with pytest.raises(MalformedResponse, match="unsupported resolution"):
        parse_document(xml, "resolution")


def test_foreign_document_is_malformed() -> None:
    xml = b"<Publication_MarketDocument><type>A44</type></Publication_MarketDocument>"
    with pytest.raises(MalformedResponse, match="not in an ENTSO-E namespace"):
        parse_document(xml, "foreign")


def test_non_numeric_value_is_malformed() -> None:
    xml = body("BE_60M.xml").replace(b"<price.amount>64.98<", b"<price.amount>n/a<")
    with pytest.raises(MalformedResponse, match="invalid Publication_MarketDocument"):
        parse_document(xml, "value")


def test_types_stated_by_the_answer_are_read() -> None:
    mixed = document("NO1_A69_2023-06-15_solar_B16_and_wind_B19.xml")
    assert mixed.process_type == "A01"
    assert [series.psr_type for series in mixed.time_series] == ["B16", "B19"]
    prices = document("NO1_A44_2023-06-20_intraday_A07_and_day_ahead_A01.xml")
    assert [series.market_agreement for series in prices.time_series] == ["A07", "A01"]
    assert prices.process_type is None
