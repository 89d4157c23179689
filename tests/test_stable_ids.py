"""Stable customer ids as the data grows (step 02, `helpers.identity.history`).

Hand-built crosswalks check the rules (kept, joined, merged into the oldest, split, removed, never
reused); consecutive months of the small demo world (`helpers.demo.months`) check them on step 01
and step 02 as a run does them, against planted truth.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from helpers.audit import run_step as run_audit_step
from helpers.core.context import open_step
from helpers.demo.months import CHANGES_FILE, MonthPlan, demo_months, stable_id_report
from helpers.identity import run_step as run_identity_step
from helpers.identity.history import (
    HISTORY_COLUMNS,
    PreviousIdentity,
    current_ids,
    find_previous_identity,
    stable_ids,
)

KEY = ["source_system", "source_record_id"]


def crosswalk(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=[*KEY, "customer_id"])


def seen(**dates: str) -> pd.Series:
    return pd.Series(pd.to_datetime(list(dates.values())), index=list(dates))


PREVIOUS = crosswalk(
    [
        ("crm", "1", "A"), ("crm", "2", "A"),  # unchanged, gets a new record
        ("crm", "3", "B"),  # unchanged
        ("shop", "4", "C"), ("shop", "5", "C"),  # split: 4 joins D, 5 leaves
        ("shop", "6", "D"),  # merged with C's record 4; C is older
        ("cti", "7", "E"),  # removed
    ]
)  # fmt: skip
FIRST_SEEN = seen(A="2020-01-01", B="2019-01-01", C="2021-01-01", D="2022-01-01", E="2018-01-01")
CURRENT = crosswalk(
    [
        ("crm", "1", "x1"), ("crm", "2", "x1"), ("crm", "9", "x1"),
        ("crm", "3", "x3"),
        ("shop", "4", "x4"), ("shop", "6", "x4"),
        ("shop", "5", "x5"),
        ("crm", "8", "x8"),
    ]
)  # fmt: skip


def test_ids_are_kept_joined_merged_into_the_oldest_split_and_removed() -> None:
    stable = stable_ids(CURRENT, PreviousIdentity("run1", PREVIOUS, FIRST_SEEN), "run2")
    assert stable.mapping.to_dict() == {"x1": "A", "x3": "B", "x4": "C", "x5": "x5", "x8": "x8"}
    history = stable.history.set_index("old_id")
    assert list(stable.history.columns) == HISTORY_COLUMNS
    assert history.loc["D", ["new_id", "reason", "retired"]].tolist() == ["C", "merged", True]
    assert history.loc["C", ["new_id", "reason", "retired"]].tolist() == ["x5", "split", False]
    assert history.loc["E", "reason"] == "removed" and pd.isna(history.loc["E", "new_id"])
    assert set(stable.history["run_id"]) == {"run2"} and set(stable.history["previous_run_id"]) == {"run1"}
    assert stable.stats == {
        "previous_run": "run1", "ids_kept": 3, "ids_new": 1, "ids_new_from_split": 1,
        "ids_retired_merged": 1, "ids_retired_removed": 1,
    }  # fmt: skip
    assert current_ids(pd.Series(list("ABCDE")), stable.history).tolist()[:4] == ["A", "B", "C", "C"]
    assert pd.isna(current_ids(pd.Series(["E"]), stable.history).iloc[0])


def test_the_younger_id_survives_when_it_is_older() -> None:
    """The survivor of a merge is the id first seen earliest, whatever its name or size."""
    younger_c = seen(A="2020-01-01", B="2019-01-01", C="2023-01-01", D="2022-01-01", E="2018-01-01")
    stable = stable_ids(CURRENT, PreviousIdentity("run1", PREVIOUS, younger_c), "run2")
    assert stable.mapping["x4"] == "D"
    merged = stable.history[stable.history["reason"] == "merged"]
    assert merged[["old_id", "new_id"]].values.tolist() == [["C", "D"]]


def test_a_changed_record_is_the_part_that_leaves() -> None:
    """A two-record customer splits one and one: the part with the unchanged record keeps the id."""
    previous = crosswalk([("crm", "1", "A"), ("cti", "2", "A")])
    current = crosswalk([("crm", "1", "x1"), ("cti", "2", "x0")])
    first = stable_ids(current, PreviousIdentity("r1", previous), "r2")
    assert first.mapping.to_dict() == {"x1": "x1", "x0": "A"}  # no content known: the smaller fresh id
    unchanged = pd.DataFrame({"source_system": ["crm"], "source_record_id": ["1"]})
    second = stable_ids(current, PreviousIdentity("r1", previous), "r2", unchanged)
    assert second.mapping.to_dict() == {"x1": "A", "x0": "x0"}


def test_no_previous_run_keeps_todays_ids_and_new_ids_never_reuse_old_ones() -> None:
    alone = stable_ids(CURRENT, None, "run1")
    assert (alone.mapping.index == alone.mapping.to_numpy()).all() and alone.history.empty
    # The part that leaves holds the smallest key, so its fresh id is the old customer's own id.
    previous = crosswalk([("crm", "1", "Cold"), ("crm", "2", "Cold"), ("crm", "3", "Cold")])
    history = pd.DataFrame(
        {"old_id": ["Cretired"], "new_id": ["Cold"], "reason": ["merged"], "retired": [True],
         "n_records": [1], "run_id": ["run1"], "previous_run_id": ["run0"]}
    )  # fmt: skip
    current = crosswalk(
        [("crm", "1", "Cold"), ("crm", "2", "Cb"), ("crm", "3", "Cb"), ("crm", "4", "Cretired")]
    )
    stable = stable_ids(current, PreviousIdentity("run2", previous, history=history), "run3")
    assert stable.mapping["Cb"] == "Cold"
    assert stable.mapping["Cold"] not in {"Cold", "Cretired"} and stable.mapping["Cold"].startswith("C")
    assert stable.mapping["Cretired"] not in {"Cold", "Cretired"}
    assert stable.mapping.is_unique
    assert len(stable.history) == 2 and stable.history["run_id"].tolist()[0] == "run1"  # cumulative


def test_the_previous_run_is_found_by_setting(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    earlier, now = runs / "2026-06-01_run", runs / "2026-07-01_run"
    config = yaml.safe_dump({"data": {"raw_dir": "data/raw/x"}, "run": {"reference_date": "2026-06-30"}})
    for artifact in ("02_identity_merge/crosswalk.parquet", "03_features/features.parquet",
                     "06_strategy/plan.parquet"):  # fmt: skip
        (earlier / artifact).parent.mkdir(parents=True, exist_ok=True)
        (earlier / artifact).write_bytes(b"")
    (earlier / "config.yml").write_text(config)
    os.utime(earlier / "config.yml", (1_700_000_000, 1_700_000_000))  # started before `now`
    (earlier / "run.json").write_text(json.dumps({"status": "ok"}))
    now.mkdir()
    (now / "config.yml").write_text(config)
    assert find_previous_identity(now, "none") is None
    assert find_previous_identity(now, "auto") == earlier.resolve()
    assert find_previous_identity(now, earlier.name) == earlier.resolve()
    (earlier / "run.json").write_text(json.dumps({"status": "failed"}))
    assert find_previous_identity(now, "auto") is None  # step 06's rule: only finished runs
    with pytest.raises(FileNotFoundError, match=r"has no 02_identity_merge/crosswalk\.parquet"):
        find_previous_identity(now, str(tmp_path / "elsewhere"))


# ---------------------------------------------------------------------------------------------
# Consecutive months of the small demo world
pytestmark_world = pytest.mark.xdist_group("stable_ids_months")
MONTHS = ["2026-07-31", "2026-08-31"]


@pytest.fixture(scope="module")
def months(
    small_world_config: dict, small_world_raw_dir: Path, small_world_truth_dir: Path, tmp_path_factory
) -> dict:
    """Runs (steps 01 and 02) on the small world and its next two months, each carrying the ids of
    the one before; plus a second run of month 1 and one with `keep_previous_links` off."""
    root = tmp_path_factory.mktemp("months")
    folders = demo_months(small_world_raw_dir, small_world_truth_dir, root / "data", MONTHS, plan=MonthPlan())
    worlds = [(small_world_raw_dir, small_world_truth_dir), *folders]
    references = [str(small_world_config["run"]["reference_date"]), *MONTHS]

    def run(name: str, month: int, previous: str, **identity: object) -> Path:
        config = json.loads(json.dumps(small_world_config, default=str))
        config["data"]["raw_dir"] = str(worlds[month][0])
        config["run"]["reference_date"] = references[month]
        config["identity"].update(previous_run=previous, **identity)
        run_dir = root / "runs" / name
        run_dir.mkdir(parents=True)
        (run_dir / "config.yml").write_text(yaml.safe_dump(config, allow_unicode=True))
        run_audit_step(open_step("01_data_audit", str(run_dir)))
        run_identity_step(open_step("02_identity_merge", str(run_dir)))
        return run_dir

    runs = {"m0": run("m0", 0, "none")}
    runs["m1"] = run("m1", 1, "m0")
    runs["m1_again"] = run("m1_again", 1, "m0")
    runs["m2"] = run("m2", 2, "m1")
    runs["m1_relinked"] = run("m1_relinked", 1, "m0", keep_previous_links=False)
    return {"runs": runs, "truth": [truth for _, truth in worlds]}


def artifact(run_dir: Path, name: str) -> pd.DataFrame:
    return pd.read_parquet(run_dir / "02_identity_merge" / f"{name}.parquet")


@pytestmark_world
def test_months_bring_new_people_and_planted_changes(months: dict) -> None:
    changes = pd.read_parquet(months["truth"][2] / CHANGES_FILE)
    counts = changes.groupby(["month", "change"]).size()
    for month in (1, 2):
        for change in ("new_person", "new_phone", "moved", "new_system_record", "merge_bridge",
                       "number_recycled"):  # fmt: skip
            assert counts.get((month, change), 0) > 0, (month, change)
    sources = pd.read_parquet(months["truth"][2] / "source_records.parquet")
    assert not sources.duplicated(KEY).any()
    recycled = changes[changes["change"] == "number_recycled"]
    owner = sources.set_index(KEY)["person_id"]
    assert (owner.reindex(pd.MultiIndex.from_frame(recycled[KEY])).to_numpy() == recycled["person_id"]).all()


@pytestmark_world
def test_unchanged_people_keep_their_ids_over_two_months(months: dict) -> None:
    runs = months["runs"]
    for month, (before, after) in enumerate([("m0", "m1"), ("m1", "m2")], start=1):
        report = stable_id_report(
            artifact(runs[before], "crosswalk"),
            artifact(runs[after], "crosswalk"),
            artifact(runs[after], "id_history"),
            months["truth"][month],
            month,
        )
        assert report["unchanged_people"] > 1000
        assert report["unchanged_moved"] == 0, report
        # A new record of a known person joins that person's id; planted splits get new ids.
        assert report["joined_known"] >= 0.9 * report["new_records_of_known_people"] > 0, report
        assert report["splits_done"] == report["splits_planted"] > 0, report
        assert report["merges_done"] >= 1 and report["merges_retired_to_survivor"] == report["merges_done"]
    manifest = json.loads((runs["m1"] / "02_identity_merge" / "step.json").read_text())
    assert manifest["previous_run"] == "m0" and manifest["previous_links"] == "kept"
    assert manifest["ids_kept"] > 1500 and manifest["ids_retired_merged"] >= 1


@pytestmark_world
def test_merges_keep_the_oldest_id_and_history_explains_every_vanished_id(months: dict) -> None:
    runs = months["runs"]
    before, after = artifact(runs["m0"], "crosswalk"), artifact(runs["m1"], "crosswalk")
    history = artifact(runs["m1"], "id_history")
    first_seen = artifact(runs["m0"], "golden").set_index("customer_id")["first_seen_at"]
    merged = history[history["reason"] == "merged"]
    assert len(merged) >= 1 and merged["retired"].all()
    for survivor, group in merged.groupby("new_id"):
        assert survivor in set(after["customer_id"]) and survivor in set(before["customer_id"])
        assert (first_seen[survivor] <= first_seen[group["old_id"]]).all()
    # Every id of the previous run is still used or retired by this run's history.
    vanished = set(before["customer_id"]) - set(after["customer_id"])
    assert vanished == set(history.loc[history["retired"], "old_id"])
    # New ids (split parts, new people) were never used before; ids stay unique per customer.
    new = set(after["customer_id"]) - set(before["customer_id"])
    assert not new & set(history["old_id"])
    split = history[history["reason"] == "split"]
    assert set(split["new_id"]) <= new and set(split["old_id"]) <= set(after["customer_id"])
    golden = artifact(runs["m1"], "golden")
    assert golden["customer_id"].is_unique and set(golden["customer_id"]) == set(after["customer_id"])
    assert set(artifact(runs["m1"], "event_customers")["customer_id"].dropna()) <= set(after["customer_id"])


@pytestmark_world
def test_a_rerun_gives_the_same_ids_and_history_accumulates(months: dict) -> None:
    runs = months["runs"]
    pd.testing.assert_frame_equal(artifact(runs["m1"], "crosswalk"), artifact(runs["m1_again"], "crosswalk"))
    first, second = artifact(runs["m1"], "id_history"), artifact(runs["m2"], "id_history")
    pd.testing.assert_frame_equal(second.iloc[: len(first)], first)
    assert set(second["run_id"]) == {"m1", "m2"}
    # Any id of month 0 leads to a customer of month 2 (or to none when all its records are gone).
    old = artifact(runs["m0"], "crosswalk")["customer_id"].drop_duplicates()
    today = current_ids(old, second).dropna()
    assert set(today) <= set(artifact(runs["m2"], "crosswalk")["customer_id"])
    assert len(today) == len(old) - int((second["reason"] == "removed").sum())


@pytestmark_world
def test_without_kept_links_ids_are_still_carried_over(months: dict) -> None:
    runs = months["runs"]
    kept, relinked = artifact(runs["m1"], "crosswalk"), artifact(runs["m1_relinked"], "crosswalk")
    manifest = json.loads((runs["m1_relinked"] / "02_identity_merge" / "step.json").read_text())
    assert manifest["previous_links"].startswith("re-decided") and "previous_links_kept" not in manifest
    assert "previous run" not in set(relinked["match_rule"].dropna())
    # With kept links, records only their previous customer holds together keep the previous method.
    placed = kept[kept["match_rule"] == "previous run"]
    assert len(placed) and set(placed["match_method"]) <= {"deterministic", "probabilistic"}
    same = kept.merge(relinked, on=KEY)
    assert np.mean(same["customer_id_x"] == same["customer_id_y"]) > 0.99


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("en", "12 kept, 5 new customers, 1 new ids for records that split off, 3 ids retired"),
        ("zh", "12 个保留,5 个新客户,1 个拆分出的新编号,3 个编号停用"),
    ],
)
def test_page_02_summary_says_how_many_ids_were_carried_over(language: str, expected: str) -> None:
    from helpers.core.i18n import Catalog
    from helpers.identity.display import summary_block
    from helpers.identity.merge import IdentityResult

    empty = pd.DataFrame()
    result = IdentityResult(
        records=empty,
        crosswalk=pd.DataFrame({"match_method": ["deterministic", "single"]}),
        golden=empty,
        identifiers=empty,
        suspicious_identifiers=empty,
        review_pairs=empty,
        merge_summary=pd.DataFrame({"source_system": ["all"], "records": [2], "customers": [2]}),
        scored_pairs=empty,
        stats={
            "previous_run": "m0",
            "ids_kept": 12,
            "ids_new": 5,
            "ids_new_from_split": 1,
            "ids_retired_merged": 2,
            "ids_retired_removed": 1,
        },
    )
    text = Catalog(language)
    assert expected in summary_block(text, result)  # retired: 2 merged + 1 removed
    result.stats = {}
    assert expected not in summary_block(text, result)
