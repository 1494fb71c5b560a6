"""Plate logic (lpr/plates.py) and the pass tracker (lpr/tracker.py): pure Python."""

from __future__ import annotations

import pytest

from lpr import plates
from lpr.ocr import Candidate, candidates_from_lines
from lpr.tracker import PlateTracker


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("abc-1234", "ABC1234"),
        (" ABC 1D23 ", "ABC1D23"),
        ("abc.1d23", "ABC1D23"),
        ("ABC12345", None),
        ("AB1234", None),
        ("1BC1234", None),  # typed text is taken as meant: no look-alike correction
        ("", None),
    ],
)
def test_normalize(text, expected):
    assert plates.normalize(text) == expected


def test_formats():
    assert plates.plate_format("ABC1D23") == plates.MERCOSUL
    assert plates.plate_format("ABC1234") == plates.ANTIGA
    assert plates.plate_format("ABCD123") is None
    assert plates.plate_format("AB1C234") is None


@pytest.mark.parametrize(
    ("old", "mercosul"),
    [
        ("ABC1034", "ABC1A34"),
        ("ABC1134", "ABC1B34"),
        ("XYZ9934", "XYZ9J34"),
        ("QWE5555", "QWE5F55"),
    ],
)
def test_official_fifth_character_equivalence(old, mercosul):
    assert plates.to_mercosul(old) == mercosul
    assert plates.to_antiga(mercosul) == old
    assert plates.plate_key(old) == plates.plate_key(mercosul) == mercosul
    assert set(plates.equivalents(old)) == {old, mercosul}


def test_mercosul_letter_past_j_has_no_old_form():
    assert plates.to_antiga("ABC1K23") is None
    assert plates.equivalents("ABC1K23") == ["ABC1K23"]


@pytest.mark.parametrize(
    ("text", "plate", "fmt", "corrections"),
    [
        ("ABC1D23", "ABC1D23", plates.MERCOSUL, 0),
        ("ABC-1234", "ABC1234", plates.ANTIGA, 0),
        ("ABC 1234", "ABC1234", plates.ANTIGA, 0),
        ("A8C1D23", "ABC1D23", plates.MERCOSUL, 1),  # 8 in a letter position is B
        ("0BC1D23", "OBC1D23", plates.MERCOSUL, 1),
        ("ABCID23", "ABC1D23", plates.MERCOSUL, 1),  # I in a digit position is 1
        ("ABC1DZ3", "ABC1D23", plates.MERCOSUL, 1),
        ("5BC-12S4", "SBC1254", plates.ANTIGA, 2),
        ("GHI-O6B7", "GHI0687", plates.ANTIGA, 2),
    ],
)
def test_parse_corrects_look_alikes_by_position(text, plate, fmt, corrections):
    parsed = plates.parse(text)
    assert parsed == plates.Plate(plate, fmt, corrections)


def test_parse_fifth_character_needs_a_hint():
    assert plates.parse("ABC1O23").format == plates.MERCOSUL  # O is a legal 5th letter
    assert plates.parse("ABC1023").format == plates.ANTIGA
    assert plates.parse("ABC1023", hint=plates.MERCOSUL).plate == "ABC1O23"
    assert plates.parse("ABC1S23", hint=plates.ANTIGA).plate == "ABC1523"
    assert plates.parse("ABC1D23", hint=plates.ANTIGA).plate == "ABC1023"


@pytest.mark.parametrize(
    "text",
    [
        "PROIBIDO ESTACIONAR",
        "PROIBIDO",
        "ESTACIONAR",
        "TEL 9988-7766",
        "9988-7766",
        "LOJA 123",  # 7 characters, but the space is in the wrong place
        "PADARIA",  # 3 corrections needed
        "FARMACIA 24H",
        "CEP 80020-310",
        "AV BRASIL 1500",
        "1234567",
        "ABCDEFG",
        "ABC1D2",
        "ABC1D234",
        "AB-C1D23",
        "ABC/1D23",
        "ÁBC1D23",
    ],
)
def test_street_text_is_never_a_plate(text):
    assert plates.parse(text) is None


def test_too_many_corrections_rejected():
    assert plates.parse("8BC1DZ3") is not None  # two
    assert plates.parse("88C1DZ3") is None  # three


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("ABC1D23", "ABC1D23", True),
        ("ABC1D23", "abc-1d23", True),
        ("ABC1D23", "ABC1D28", True),  # one substitution
        ("ABC1O23", "ABC1023", True),  # one look-alike
        ("ABC1234", "ABC1C34", True),  # old/Mercosul equivalents
        ("ABC1234", "ABC1C35", True),  # equivalent + one edit
        ("ABC1D23", "ABD1D24", False),
        ("ABC1D23", "XYZ9J87", False),
    ],
)
def test_similar(a, b, expected):
    assert plates.similar(a, b) is expected


def test_similar_patterns_match_exactly_the_similar_keys():
    import re

    patterns = [re.compile(p) for p in plates.similar_patterns("ABC1234")]
    for other in ("ABC1C34", "ABC1C35", "XBC1C34", "ABC1234"):
        key = plates.plate_key(other)
        assert any(p.match(key) for p in patterns) == plates.similar("ABC1234", other), other
    assert not any(p.match(plates.plate_key("ABD1C35")) for p in patterns)


def test_display():
    assert plates.display("ABC1234") == "ABC-1234"
    assert plates.display("ABC1D23") == "ABC1D23"


def test_vote_by_position_weighted_by_confidence():
    readings = [("ABC1D23", 0.9), ("ABC1D28", 0.6), ("A8C1D23", 0.1), ("ABC1D23", 0.8)]
    plate, confidence = plates.vote(readings)
    assert plate == "ABC1D23"
    assert 0 < confidence <= 1


def test_vote_keeps_the_old_form_when_frames_saw_digits():
    plate, _ = plates.vote([("ABC1234", 0.9), ("ABC1234", 0.8), ("ABC1C34", 0.3)])
    assert plate == "ABC1234"
    assert plates.vote([]) is None


def _cand(plate: str, conf: float = 0.9) -> tuple[Candidate, bytes]:
    fmt = plates.plate_format(plate)
    return Candidate(plate, fmt, conf, (10, 10, 100, 25), plate), plate.encode()


def test_tracker_one_read_per_pass_and_cooldown():
    tracker = PlateTracker(
        gap_s=1.0, max_pass_s=5.0, cooldown_s=30.0, confirm_frames=3, instant_confidence=1.1
    )
    assert tracker.feed(0.0, [_cand("ABC1D23", 0.8)]) == []
    assert tracker.feed(0.5, [_cand("ABC1D28", 0.5)]) == []
    assert tracker.feed(1.0, [_cand("ABC1D23", 0.95)]) == []
    assert tracker.busy
    reads = tracker.feed(2.1, [])
    assert not tracker.busy
    assert [(r.plate, r.frames, r.first_seen) for r in reads] == [("ABC1D23", 3, 0.0)]
    assert reads[0].crop == b"ABC1D23"  # the best agreeing frame's crop
    # The same car again within the cooldown: suppressed.
    tracker.feed(10.0, [_cand("ABC1D23")])
    assert tracker.feed(12.0, []) == []
    # After the cooldown it is a new pass.
    tracker.feed(50.0, [_cand("ABC1D23")])
    assert [r.plate for r in tracker.feed(52.0, [])] == ["ABC1D23"]


def test_tracker_reads_once_three_frames_agree_and_suppresses_the_rest_of_the_pass():
    tracker = PlateTracker(
        gap_s=1.0, max_pass_s=10.0, cooldown_s=30.0, confirm_frames=3, instant_confidence=1.1
    )
    assert tracker.feed(0.0, [_cand("ABC1D23")]) == []
    assert tracker.feed(0.3, [_cand("ABC1D28", 0.6)]) == []
    assert tracker.feed(0.6, [_cand("ABC1D23")]) == []
    reads = tracker.feed(0.9, [_cand("ABC1D23")])  # the car is still in the picture
    assert [(r.plate, r.frames, r.first_seen) for r in reads] == [("ABC1D23", 4, 0.0)]
    for now in (1.2, 1.5, 1.8, 2.1):
        assert tracker.feed(now, [_cand("ABC1D23")]) == []
    assert tracker.feed(5.0, []) == []


def test_tracker_two_vehicles_and_max_pass_duration():
    tracker = PlateTracker(
        gap_s=1.0, max_pass_s=2.0, cooldown_s=30.0, confirm_frames=99, instant_confidence=1.1
    )
    tracker.feed(0.0, [_cand("ABC1D23"), _cand("XYZ9876")])
    tracker.feed(0.5, [_cand("ABC1D23"), _cand("XYZ9876")])
    # XYZ left the picture 1 s ago: its pass is over; ABC's goes on.
    assert [r.plate for r in tracker.feed(1.5, [_cand("ABC1D23")])] == ["XYZ9876"]
    reads = tracker.feed(2.0, [_cand("ABC1D23")])  # 2 s old: closed though still in view
    assert [r.plate for r in reads] == ["ABC1D23"]
    assert tracker.feed(2.5, [_cand("ABC1D23")]) == []
    assert tracker.flush(10.0, force=True) == []  # the parked car is not read twice


def test_tracker_reads_a_sure_frame_at_once():
    tracker = PlateTracker(gap_s=1.0, cooldown_s=30.0, instant_confidence=0.98)
    assert tracker.feed(0.0, [_cand("ABC1D23", 0.9)]) == []
    reads = tracker.feed(0.3, [_cand("ABC1D23", 0.99)])
    assert [(r.plate, r.frames) for r in reads] == [("ABC1D23", 2)]
    assert tracker.feed(0.6, [_cand("ABC1D23", 0.99)]) == []  # the same car: suppressed


def test_tracker_drops_low_confidence_passes():
    tracker = PlateTracker(gap_s=1.0, min_confidence=0.5)
    tracker.feed(0.0, [_cand("ABC1D23", 0.2)])
    assert tracker.feed(5.0, []) == []


def test_candidates_need_plate_geometry():
    lines = [
        ("ABC1D23", 0.95, (100.0, 100.0, 120.0, 28.0)),  # a plate line
        ("XYZ1D23", 0.95, (100.0, 300.0, 30.0, 28.0)),  # too narrow for 7 characters
        ("QWE1D23", 0.95, (100.0, 400.0, 900.0, 28.0)),  # far too wide
        ("ASD1D23", 0.3, (100.0, 500.0, 120.0, 28.0)),  # low OCR score
        ("BRASIL", 0.9, (120.0, 80.0, 60.0, 12.0)),
        ("LOJA 123", 0.99, (300.0, 50.0, 140.0, 30.0)),
    ]
    found = candidates_from_lines(lines, frame_height=720)
    assert [(c.plate, c.format, c.bbox) for c in found] == [
        ("ABC1D23", plates.MERCOSUL, (100, 100, 120, 28))
    ]


def test_candidates_merge_an_old_plate_split_at_its_dash_and_use_the_band_hint():
    lines = [
        ("XYZ", 0.9, (100.0, 100.0, 50.0, 28.0)),
        ("1234", 0.9, (160.0, 101.0, 70.0, 28.0)),
        ("BRASIL", 0.9, (400.0, 80.0, 60.0, 12.0)),
        ("ABC1023", 0.9, (390.0, 100.0, 120.0, 28.0)),  # under a BRASIL band: Mercosul
    ]
    found = {c.plate: c for c in candidates_from_lines(lines, frame_height=720)}
    assert set(found) == {"XYZ1234", "ABC1O23"}
    assert found["XYZ1234"].bbox == (100, 100, 130, 29)
