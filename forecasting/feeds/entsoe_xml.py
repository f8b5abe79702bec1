"""Safe parsing of the XML that the ENTSO-E Transparency Platform answers with.

Owns: turning response bytes into either an `Acknowledgement` (the platform's "request rejected /
no data" answer) or a `MarketDocument` (Publication_MarketDocument for prices, GL_MarketDocument
for load and generation), and merging a document's TimeSeries into one hourly series.

* Elements are matched on local names, so every schema version parses (publication 7:0 and 7:3,
  generationload 3:0, acknowledgement 7:0/8:x).
* Hostile XML is refused by defusedxml before anything is expanded: no DTD is accepted at all,
  so entity expansion ("billion laughs") and external entities (XXE) never run.
* Anything that is not a well-formed document of the expected shape raises `MalformedResponse`.
* Resolutions: those that tile an hour (PT15M, PT30M, PT60M) and the week (P7D, reservoir filling
  A72). A weekly period may be an hour short or long: ENTSO-E's weeks are local weeks, so one with
  a clock change has 167 or 169 hours; its points step by 7 × 24 h from the period start.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from xml.etree.ElementTree import Element, ParseError

import pandas as pd
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from forecasting.clock import HOUR, WEEK
from forecasting.feeds.base import MalformedResponse, hourly_mean

# Every ENTSO-E document namespace belongs to the IEC 62325-451 family; the version suffix varies.
IEC_NAMESPACE_PREFIX = "urn:iec62325.351:tc57wg16:451-"

# Root element local names.
PUBLICATION_DOCUMENT = "Publication_MarketDocument"
GL_DOCUMENT = "GL_MarketDocument"
ACKNOWLEDGEMENT_DOCUMENT = "Acknowledgement_MarketDocument"
MARKET_DOCUMENTS = (PUBLICATION_DOCUMENT, GL_DOCUMENT)

# Element local names.
CREATED = "createdDateTime"
DOCUMENT_PROCESS_TYPE = "process.processType"  # GL documents: A01 day-ahead, A16 realised, ...
TIME_SERIES = "TimeSeries"
MARKET_AGREEMENT = "contract_MarketAgreement.type"  # prices: A01 day-ahead, A07 intraday
PSR = "MktPSRType"
PSR_TYPE = "psrType"  # B16 solar, B19 wind onshore, ...
MEASURE_UNIT = "quantity_Measure_Unit.name"  # GL documents: MAW (MW), MWH (A72 reservoir filling)
CURVE_TYPE = "curveType"
SEQUENCE_POSITION = "classificationSequence_AttributeInstanceComponent.position"
DOMAIN_SUFFIX = "_Domain.mRID"  # in_Domain.mRID, outBiddingZone_Domain.mRID, ...
PERIOD = "Period"
TIME_INTERVAL = "timeInterval"
START = "start"
END = "end"
RESOLUTION = "resolution"
POINT = "Point"
POSITION = "position"
VALUE_ELEMENTS = ("price.amount", "quantity")  # publication documents / GL documents
REASON = "Reason"
REASON_CODE = "code"
REASON_TEXT = "text"

# curveType A01: every position present; A03: an omitted position repeats the previous value.
CURVE_FIXED = "A01"
CURVE_BLOCKS = "A03"

_RESOLUTION_PATTERN = re.compile(r"^PT(?:(\d+)H)?(?:(\d+)M)?$")
WEEKLY_RESOLUTION = "P7D"


@dataclass(frozen=True)
class Acknowledgement:
    """The platform refused the request or found nothing; `text` is ENTSO-E's own reason."""

    code: str
    text: str


@dataclass(frozen=True)
class Period:
    resolution: pd.Timedelta
    values: pd.Series  # indexed by the UTC start of each interval; omitted A03 positions filled


@dataclass(frozen=True)
class TimeSeries:
    sequence_position: int  # 1 unless the document distinguishes auctions (DE-LU: 2 = EXAA)
    domains: dict[str, str]  # e.g. {"in_Domain.mRID": "10YBE----------2"}
    periods: tuple[Period, ...]
    market_agreement: str | None = None  # absent from older price documents
    psr_type: str | None = None  # production type of generation documents
    measure_unit: str | None = None  # quantity_Measure_Unit.name of GL documents (MAW, MWH)


@dataclass(frozen=True)
class MarketDocument:
    kind: str  # PUBLICATION_DOCUMENT or GL_DOCUMENT
    created_at: pd.Timestamp | None
    time_series: tuple[TimeSeries, ...]
    process_type: str | None = None  # stated by GL documents for all their TimeSeries


def parse_document(body: bytes, what: str) -> MarketDocument | Acknowledgement:
    """Parse an API answer; `what` names the request in `MalformedResponse` messages."""
    root = _parse_xml(body, what)
    namespace, kind = _split_tag(root.tag)
    if not namespace.startswith(IEC_NAMESPACE_PREFIX):
        raise MalformedResponse(f"{what}: root element {kind!r} is not in an ENTSO-E namespace")
    try:
        if kind == ACKNOWLEDGEMENT_DOCUMENT:
            return _acknowledgement(root)
        if kind in MARKET_DOCUMENTS:
            return _market_document(kind, root)
    except ValueError as exc:
        raise MalformedResponse(f"{what}: invalid {kind}: {exc}") from None
    raise MalformedResponse(f"{what}: unexpected document {kind!r}")


def hourly_values(time_series: Sequence[TimeSeries]) -> pd.Series:
    """Merge TimeSeries into one hourly series indexed by UTC hour, without duplicate hours.

    Only the first auction (lowest classification position) is kept: other positions are
    different markets, not gap fillers. Where periods of several resolutions cover an hour, the
    finest one wins, averaged to the hour.
    """
    if not time_series:
        return _empty()
    first = min(ts.sequence_position for ts in time_series)
    periods = [p for ts in time_series if ts.sequence_position == first for p in ts.periods]
    if not periods:
        return _empty()
    periods.sort(key=lambda p: p.resolution)  # stable: document order within one resolution
    hourly = pd.concat([hourly_mean(p.values) for p in periods])
    return hourly[~hourly.index.duplicated(keep="first")].sort_index()


def _parse_xml(body: bytes, what: str) -> Element:
    if not body.strip():
        raise MalformedResponse(f"{what}: empty answer")
    try:
        # ENTSO-E never sends a DTD: refusing any DTD costs nothing and blocks every entity trick.
        return fromstring(body, forbid_dtd=True)
    except DefusedXmlException as exc:
        raise MalformedResponse(f"{what}: refused hostile XML ({exc})") from None
    except ParseError as exc:
        raise MalformedResponse(f"{what}: not well-formed XML ({exc})") from None


def _split_tag(tag: str) -> tuple[str, str]:
    """'{namespace}local' → (namespace, local); a tag without namespace gives ''."""
    if tag.startswith("{"):
        namespace, _, local = tag[1:].partition("}")
        return namespace, local
    return "", tag


def _local(element: Element) -> str:
    return _split_tag(element.tag)[1]


def _children(element: Element, name: str) -> Iterator[Element]:
    return (child for child in element if _local(child) == name)


def _child(element: Element, name: str) -> Element:
    found = next(_children(element, name), None)
    if found is None:
        raise ValueError(f"<{_local(element)}> has no <{name}>")
    return found


def _text(element: Element, name: str) -> str:
    return (_child(element, name).text or "").strip()


def _optional_text(element: Element, name: str) -> str | None:
    found = next(_children(element, name), None)
    return None if found is None else (found.text or "").strip()


def _utc(text: str) -> pd.Timestamp:
    stamp = pd.Timestamp(text)
    if stamp.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no time zone")
    return stamp.tz_convert("UTC")


def _resolution(text: str) -> pd.Timedelta:
    if text == WEEKLY_RESOLUTION:
        return WEEK
    match = _RESOLUTION_PATTERN.match(text)
    step = pd.Timedelta(hours=int(match[1] or 0), minutes=int(match[2] or 0)) if match else None
    # Hourly output needs intervals that tile the hour: PT15M, PT30M, PT60M (PT1H).
    if step is None or step <= pd.Timedelta(0) or step > HOUR or HOUR % step:
        raise ValueError(f"unsupported resolution {text!r}")
    return step


def _acknowledgement(root: Element) -> Acknowledgement:
    reasons = list(_children(root, REASON))
    codes = [_optional_text(r, REASON_CODE) or "" for r in reasons]
    texts = [_optional_text(r, REASON_TEXT) or "" for r in reasons]
    return Acknowledgement(
        code=codes[0] if codes else "", text="; ".join(t for t in texts if t) or "(no reason given)"
    )


def _market_document(kind: str, root: Element) -> MarketDocument:
    created = _optional_text(root, CREATED)
    return MarketDocument(
        kind=kind,
        created_at=_utc(created) if created else None,
        time_series=tuple(_time_series(ts) for ts in _children(root, TIME_SERIES)),
        process_type=_optional_text(root, DOCUMENT_PROCESS_TYPE),
    )


def _time_series(element: Element) -> TimeSeries:
    curve = _optional_text(element, CURVE_TYPE) or CURVE_FIXED
    if curve not in (CURVE_FIXED, CURVE_BLOCKS):
        raise ValueError(f"unsupported curveType {curve!r}")
    position = _optional_text(element, SEQUENCE_POSITION)
    return TimeSeries(
        sequence_position=int(position) if position else 1,
        domains={
            _local(child): (child.text or "").strip()
            for child in element
            if _local(child).endswith(DOMAIN_SUFFIX)
        },
        periods=tuple(_period(p, curve) for p in _children(element, PERIOD)),
        market_agreement=_optional_text(element, MARKET_AGREEMENT),
        psr_type=_psr_type(element),
        measure_unit=_optional_text(element, MEASURE_UNIT),
    )


def _psr_type(element: Element) -> str | None:
    psr = next(_children(element, PSR), None)
    return None if psr is None else _optional_text(psr, PSR_TYPE)


def _period(element: Element, curve: str) -> Period:
    interval = _child(element, TIME_INTERVAL)
    start, end = _utc(_text(interval, START)), _utc(_text(interval, END))
    resolution = _resolution(_text(element, RESOLUTION))
    slots, rest = divmod(end - start, resolution)
    if resolution == WEEK and rest:  # a local week with a clock change: 167 or 169 hours
        slots, rest = round((end - start) / WEEK), min(rest, WEEK - rest)
        rest = rest if rest > HOUR else pd.Timedelta(0)
    if slots <= 0 or rest:
        raise ValueError(f"period {start}..{end} is not a whole number of {resolution} steps")
    points = _points(element, slots)
    if curve == CURVE_BLOCKS:
        points = points.reindex(range(1, slots + 1)).ffill().dropna()
    index = pd.DatetimeIndex(start + (points.index - 1) * resolution)
    return Period(resolution=resolution, values=pd.Series(points.to_numpy(), index=index))


def _points(element: Element, slots: int) -> pd.Series:
    """Values by 1-based position, sorted; positions must lie inside the period."""
    values: dict[int, float] = {}
    for point in _children(element, POINT):
        position = int(_text(point, POSITION))
        if not 1 <= position <= slots or position in values:
            raise ValueError(f"point position {position} repeated or outside 1..{slots}")
        values[position] = float(_value_text(point))
    return pd.Series(values, dtype="float64").sort_index()


def _value_text(point: Element) -> str:
    for name in VALUE_ELEMENTS:
        text = _optional_text(point, name)
        if text is not None:
            return text
    raise ValueError(f"<{POINT}> has none of {VALUE_ELEMENTS}")


def _empty() -> pd.Series:
    return pd.Series(dtype="float64", index=pd.DatetimeIndex([], tz="UTC"))
