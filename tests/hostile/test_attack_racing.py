"""An outsider's attack on ``race.json`` read back (issue 25): the fields the first family left
loosely typed. Before the fix a tampered ``test_state`` (the sequential test's betting state)
was a bare KeyError, ValueError or AttributeError inside the race, an empty ``survivors`` an
IndexError, and NaN or infinite scores and betting states, or rounds naming configurations the
race never had, were taken as they were."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from crucible_dagster.run_history.records import RecordError
from tests.hostile.test_racing import _edit, _evaluate, _one_line, _resume, _written

NAN = float("nan")
CASES = [
    ("blocks_text", lambda d: d["test_state"].update(blocks="x"), "test_state.blocks"),
    ("state_cut", lambda d: d.update(test_state={"blocks": 1}), "test_state.log_wealth"),
    ("wealth_list", lambda d: d["test_state"].update(log_wealth=[1]), "test_state.log_wealth"),
    ("wealth_short", lambda d: d["test_state"]["log_wealth"].update(a=[0.0] * 3),
     "test_state.log_wealth.a"),
    ("wealth_other_config", lambda d: d["test_state"]["log_wealth"].update(zz=[0.0] * 11),
     "test_state.log_wealth"),
    ("sup_nan", lambda d: d["test_state"]["sup_log_e"].update(a=NAN), "test_state.sup_log_e.a"),
    ("blocks_mismatch", lambda d: d["test_state"].update(blocks=1), "test_state.blocks"),
    ("score_nan", lambda d: d["scores"].update(a=[NAN] * len(d["scores"]["a"])), "scores.a.0"),
    ("score_inf", lambda d: d["scores"].update(b=[float("inf")] * len(d["scores"]["b"])),
     "scores.b.0"),
    ("no_survivors", lambda d: d.update(survivors=[]), "survivors"),
    ("round_drops_unknown", lambda d: d["rounds"][0].update(dropped=["zz"]), "rounds.0.dropped"),
    ("round_keeps_unknown", lambda d: d["rounds"][0].update(survivors=["zz"]),
     "rounds.0.survivors"),
]  # fmt: skip


@pytest.mark.parametrize(("change", "field"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_tampered_field_is_a_located_record_error(
    tmp_path: Path, change: Any, field: str
) -> None:
    path = _written(tmp_path)
    _edit(path, change)
    with pytest.raises(RecordError) as info:
        _resume(path)
    _one_line(info.value, str(path), field)


def test_an_untampered_record_resumes_to_the_end(tmp_path: Path) -> None:
    race = _resume(_written(tmp_path))
    while blocks := race.next_blocks():
        race.play_round(blocks, _evaluate(list(race.record.survivors), blocks))
    assert race.record.finished and race.record.survivors == ["a"]


def test_a_score_range_whose_span_overflows_is_refused() -> None:
    """[-1e308, 1e308] passed (each end finite), and its span, inf, scaled every difference
    between configurations to 0: the race could never drop one and said the metric was
    constant."""
    from pydantic import ValidationError

    from crucible_dagster.racing.settings import RacingSettings

    with pytest.raises(ValidationError, match="a finite span"):
        RacingSettings.model_validate({"score_range": [-1e308, 1e308]})
    assert RacingSettings.model_validate({"score_range": [0, 1e308]}).score_range == (0, 1e308)
