"""Export-style acceptance benchmark (issue 11, "How well"): the proposed config on a Chinese export.

The export-style demo world (`config/demo_export.yml`, `demo.style: export`) of --customers people is
generated once into --root; `python -m helpers init-config` proposes a config for its raw folder, the
benchmark sets only `run.reference_date` (the world's) and runs the whole workbench with it
(`--set demo.truth_dir=...` so steps 04/05 find the truth). The default demo world of the same seed
and size (the same people, events and planted truth) runs too, for the segment and stage baseline.

Printed: per file, the rows of the truth (`export_rows`), how many appear exactly once in
`02_identity_merge/row_trace.parquet`, the planted bad rows (`export_defects`, quarantine true), their
recall and the false-quarantine share of the other rows; identity pairwise precision/recall/F1 over the
clean rows of a planted person (all files, identity files only, and the pairs touching each hard case:
household members sharing a landline, company contacts behind a switchboard, persons whose e-mail
changed, persons whose mobile changed and both holders of a recycled mobile, from `export_recycled`);
the planted-segment ARI and stage macro F1 of both worlds, with customers mapped to persons
by their identity records (what steps 04/05 record) and by all their rows (row_trace + export_rows,
which also covers customers made from events), each world's stage confusion matrix and its stage
macro F1 over the persons whose every order reached an identifier an identity record holds and over the
others (where the export world's stage gap sits), and what the evidence the export lacks costs
(`report_linked`: the figures without the event rows no identity record's identifier could place, and
with them joined to their person's customer, steps 03-05 re-run). Wall and CPU seconds (this process and its
children: the workbench runs in child processes) are printed for every phase.

    .venv/bin/python benchmarks/bench_export.py --customers 2000
    flock /tmp/heavy.lock .venv/bin/python benchmarks/bench_export.py --customers 20000
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import yaml
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from sklearn.metrics import adjusted_rand_score

from helpers.audit import run_step as run_audit
from helpers.clustering.step import run_step as run_clustering
from helpers.core.config import load_config
from helpers.core.context import open_step
from helpers.core.normalize import (
    is_placeholder_email,
    is_placeholder_phone,
    normalize_email,
    normalize_phone,
)
from helpers.core.runner import ensure_demo_data
from helpers.demo.truth import customer_person
from helpers.features.build import run_step as run_features
from helpers.lifecycle.stages import stage_accuracy
from helpers.lifecycle.step import run_step as run_lifecycle

T = TypeVar("T")
IDENTITY_FILES = ("客户主档.xlsx", "会员积分.csv")
CASES = {  # hard case -> persons column that is non-empty for the case's persons
    "household member (shared landline)": "household_id",
    "switchboard contact": "company_id",
    "e-mail changed": "previous_email",
    "moved city": "moved_from_city",
    "mobile changed": "phone_changed",
    "recycled mobile (both holders)": "recycled_number",
}


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and its finished children so far."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(label: str, function: Callable[..., T], *args: Any) -> T:
    """Call `function(*args)` and print its wall and CPU seconds."""
    wall, cpu = time.perf_counter(), cpu_seconds()
    result = function(*args)
    print(f"{label}: {time.perf_counter() - wall:.1f} s wall, {cpu_seconds() - cpu:.1f} s CPU", flush=True)
    return result


def world(root: Path, style: str, customers: int, seed: int) -> tuple[Path, Path, str]:
    """Raw folder, truth folder and reference date of the demo world (generated when missing)."""
    raw, truth = root / f"raw_{style}_{customers}_{seed}", root / f"truth_{style}_{customers}_{seed}"
    base = "config/demo_export.yml" if style == "export" else None
    overrides = [f"demo.customers={customers}", f"demo.seed={seed}", f"data.raw_dir={raw}"]
    config = load_config(base, [*overrides, f"demo.truth_dir={truth}"])
    ensure_demo_data(config, progress=False)
    return raw, truth, str(config["run"]["reference_date"])


def propose(raw: Path, reference_date: str, path: Path) -> Path:
    """`init-config` on `raw` written to `path`, with only `run.reference_date` set to the world's."""
    subprocess.run([sys.executable, "-m", "helpers", "init-config", str(raw), "-o", str(path)], check=True)
    text, n = re.subn(
        r"^(  reference_date: )\S+", rf"\g<1>'{reference_date}'", path.read_text("utf-8"), count=1, flags=re.M
    )
    if n != 1:
        raise SystemExit(f"{path}: no run.reference_date line to set")
    path.write_text(text, encoding="utf-8")
    return path


def latest_run(outputs: Path) -> Path | None:
    """The newest run folder under `outputs/runs` whose every step finished, else None."""
    for run_dir in sorted((outputs / "runs").glob("*"), reverse=True):
        manifest = run_dir / "run.json"
        if manifest.is_file():
            steps = json.loads(manifest.read_text())["steps"]
            if len(steps) == 6 and all(s.get("status") == "ok" for s in steps.values()):
                return run_dir
    return None


def run(config: Path | None, overrides: list[str], outputs: Path, reuse: bool) -> Path:
    """Run the whole workbench (`python -m helpers run`) unless `reuse` finds a finished run."""
    if reuse and (found := latest_run(outputs)) is not None:
        print(f"reusing {found}")
        return found
    command = [sys.executable, "-m", "helpers", "run", "--quiet", "--outputs", str(outputs)]
    command += ["--config", str(config)] if config else []
    for override in overrides:
        command += ["--set", override]
    subprocess.run(command, check=True)
    found = latest_run(outputs)
    if found is None:
        raise SystemExit(f"{outputs}: the run did not finish")
    return found


def audit_seconds(root: Path, customers: int, seed: int) -> None:
    """Step 01 alone (in this process) on the export world with its proposed config and on the default
    world of the same size and seed; print wall and CPU seconds of each and their ratio."""
    seconds = {}
    for style in ("export", "default"):
        raw, truth, reference_date = timed(
            f"{style} world {customers:,}", world, root, style, customers, seed
        )
        if style == "export":
            proposed = propose(raw, reference_date, root / f"proposed_{customers}_{seed}.yml")
            config = load_config(proposed, [f"demo.truth_dir={truth}"])
        else:
            config = load_config(None, [f"data.raw_dir={raw}", f"demo.truth_dir={truth}"])
        run_dir = root / f"audit_{style}_{customers}_{seed}_{time.strftime('%H%M%S')}"
        run_dir.mkdir(parents=True)
        (run_dir / "config.yml").write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
        wall, cpu = time.perf_counter(), cpu_seconds()
        run_audit(open_step("01_data_audit", str(run_dir)))
        seconds[style] = (time.perf_counter() - wall, cpu_seconds() - cpu)
        print(f"step 01, {style} style: {seconds[style][0]:.1f} s wall, {seconds[style][1]:.1f} s CPU")
    (wall_e, cpu_e), (wall_d, cpu_d) = seconds["export"], seconds["default"]
    print(f"step 01 export / default at {customers:,}: {wall_e / wall_d:.2f}x wall, {cpu_e / cpu_d:.2f}x CPU")


def file_measures(trace: pd.DataFrame, rows: pd.DataFrame, defects: pd.DataFrame) -> pd.DataFrame:
    """Per file: truth rows, rows in row_trace exactly once, trace rows the truth lacks, planted bad rows
    (quarantine true), their recall, false quarantine (quarantined rows among the others, count and
    share) and planted rows that must stay (quarantine false) but were quarantined."""
    counts = trace.groupby(["file", "row_no"]).size().rename("n_trace")
    truth = rows[["file", "row_no"]].merge(counts.reset_index(), on=["file", "row_no"], how="left")
    quarantined = trace.loc[trace["status"] == "quarantined", ["file", "row_no"]].drop_duplicates()
    quarantined["quarantined"] = True
    truth = truth.merge(quarantined, on=["file", "row_no"], how="left")
    truth["quarantined"] = truth["quarantined"].astype("boolean").fillna(False).astype(bool)
    bad = defects[defects["quarantine"]][["file", "row_no"]].drop_duplicates().assign(bad=True)
    keep = defects[~defects["quarantine"]][["file", "row_no"]].drop_duplicates().assign(keep=True)
    truth = truth.merge(bad, on=["file", "row_no"], how="left").merge(keep, on=["file", "row_no"], how="left")
    truth[["bad", "keep"]] = truth[["bad", "keep"]].astype("boolean").fillna(False).astype(bool)
    extra = trace.merge(rows[["file", "row_no"]], on=["file", "row_no"], how="left", indicator=True)
    table = truth.groupby("file").agg(
        rows=("row_no", "size"),
        once=("n_trace", lambda n: int((n == 1).sum())),
        bad=("bad", "sum"),
        bad_quarantined=("quarantined", lambda q: int((q & truth.loc[q.index, "bad"]).sum())),
        false_quarantine=("quarantined", lambda q: int((q & ~truth.loc[q.index, "bad"]).sum())),
        keep_quarantined=("quarantined", lambda q: int((q & truth.loc[q.index, "keep"]).sum())),
    )
    table.insert(2, "not_in_truth", extra[extra["_merge"] == "left_only"].groupby("file").size())
    table["not_in_truth"] = table["not_in_truth"].fillna(0).astype(int)
    table["recall"] = (table["bad_quarantined"] / table["bad"]).round(4)
    table["false_q_share"] = (table["false_quarantine"] / (table["rows"] - table["bad"])).round(5)
    return table


def pairwise_scores(
    person: pd.Series, customer: pd.Series, focus: pd.Series | None = None
) -> dict[str, float]:
    """Pairwise precision, recall and F1 of rows grouped by `customer` against rows grouped by `person`.

    A pair of rows is predicted when both have the same customer and true when both have the same
    person. With `focus` (a boolean per row) only the pairs with at least one focus row count.
    """
    focus = pd.Series(True, index=person.index) if focus is None else focus.astype(bool)
    frame = pd.DataFrame({"person": person.to_numpy(), "customer": customer.to_numpy(), "focus": focus})

    def touching(keys: list[str]) -> float:
        groups = frame.groupby(keys, sort=False)["focus"].agg(["size", "sum"])
        n, rest = groups["size"].to_numpy(float), (groups["size"] - groups["sum"]).to_numpy(float)
        return float((n * (n - 1) - rest * (rest - 1)).sum() / 2)

    hits, predicted, actual = touching(["customer", "person"]), touching(["customer"]), touching(["person"])
    precision = hits / predicted if predicted else 1.0
    recall = hits / actual if actual else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"rows": int(focus.sum()), "precision": precision, "recall": recall, "f1": f1}


def clean_rows(trace: pd.DataFrame, rows: pd.DataFrame, defects: pd.DataFrame) -> pd.DataFrame:
    """Trace rows of a planted person that are not planted bad rows, with their person; rows without a
    customer (quarantined or unlinked) get a customer of their own."""
    bad = defects[defects["quarantine"]][["file", "row_no"]].drop_duplicates().assign(bad=True)
    frame = trace.drop_duplicates(["file", "row_no"]).merge(rows, on=["file", "row_no"], how="inner")
    frame = frame.merge(bad, on=["file", "row_no"], how="left")
    frame = frame[frame["bad"].isna() & (frame["person_id"].fillna("") != "")].drop(columns="bad")
    alone = frame["customer_id"].isna() | (frame["customer_id"] == "")
    frame["customer"] = frame["customer_id"].where(
        ~alone, "row:" + frame["file"] + ":" + frame["row_no"].astype(str)
    )
    return frame.reset_index(drop=True)


def row_keys(run_dir: Path, trace: pd.DataFrame) -> pd.DataFrame:
    """Identifiers of every accepted row (file, row_no, key): the normalized phones, e-mails and member
    numbers of identity records (step 01's clean tables) and the normalized `customer_ref` of events
    (phones with the run's home region and area code; a reference that does not normalize keeps its
    raw text, so identical strings still connect)."""
    data = yaml.safe_load((run_dir / "config.yml").read_text("utf-8"))["data"]
    files = trace[["table", "file"]].drop_duplicates().set_index("table")["file"]
    parts = []
    for table, file in files.items():
        clean = pd.read_parquet(run_dir / "01_data_audit" / f"clean_{table}.parquet")
        if "customer_ref" in clean:
            ref = clean["customer_ref"].astype("string")
            phone = normalize_phone(
                ref, home_region=data["home_region"], home_area_code=data["home_area_code"]
            )
            normalized = phone.where(clean["customer_ref_kind"] == "phone", normalize_email(ref))
            columns = {"key": normalized.fillna(ref.str.strip())}
        else:
            columns = {c: clean[c] for c in clean if c.endswith("_norm") or c == "member_no"}
        for values in columns.values():
            keys = pd.DataFrame({"file": file, "row_no": clean["source_row"], "key": values.astype("string")})
            parts.append(keys.dropna(subset=["key"]))
    return pd.concat(parts, ignore_index=True)


def linkable(clean: pd.DataFrame, keys: pd.DataFrame, shared: bool) -> np.ndarray:
    """Component of each clean row within its person: rows of one person sharing an identifier key are
    connected, and all of a person's identity-file rows are (record linkage is measured apart). Pairs
    in one component are the ones a resolver could link from the files' identifiers alone. Without
    `shared`, keys that rows of several persons carry (household landlines, switchboards, placeholders)
    connect nothing: only a name could tell their holders apart."""
    node = keys.merge(clean.reset_index()[["index", "file", "row_no", "person_id"]], on=["file", "row_no"])
    if not shared:
        node = node[node.groupby("key")["person_id"].transform("nunique") == 1]
    identity = clean[clean["file"].isin(IDENTITY_FILES)].reset_index().assign(key="\x00identity")
    node = pd.concat([node, identity[["index", "person_id", "key"]]])
    key_id = pd.factorize(node["person_id"] + "\x1f" + node["key"])[0]
    n = len(clean)
    graph = coo_matrix(
        (np.ones(len(node)), (node["index"].to_numpy(), n + key_id)), shape=(n + key_id.max() + 1,) * 2
    )
    return connected_components(graph, directed=False)[1][:n]


def person_by_rows(trace: pd.DataFrame, rows: pd.DataFrame) -> pd.Series:
    """Planted person of each customer: the person most of its trace rows belong to."""
    linked = trace[trace["customer_id"].fillna("") != ""].merge(rows, on=["file", "row_no"])
    linked = linked[linked["person_id"].fillna("") != ""]
    counts = linked.groupby(["customer_id", "person_id"]).size().rename("n").reset_index()
    best = counts.sort_values(["customer_id", "n", "person_id"], ascending=[True, False, True])
    return best.drop_duplicates("customer_id").set_index("customer_id")["person_id"]


def with_recycled(persons: pd.DataFrame, truth: Path) -> pd.DataFrame:
    """`persons` with `recycled_number` (both holders of a recycled mobile) and `phone_changed` (its
    previous holder, who moved to a new number) from the export truth; empty where not planted."""
    persons = persons.assign(recycled_number="", phone_changed="")
    path = truth / "export_recycled.parquet"
    if not path.is_file():
        return persons
    recycled = pd.read_parquet(path)
    number = recycled.set_index("person_id")["number"]
    changed = recycled[recycled["role"] == "previous holder"].set_index("person_id")["new_number"]
    persons["recycled_number"] = persons["person_id"].map(number).fillna("")
    persons["phone_changed"] = persons["person_id"].map(changed).fillna("")
    return persons


def planted_agreement(run_dir: Path, owner: pd.Series, persons: pd.DataFrame) -> dict[str, float]:
    """ARI of the clustered customers' segments (segment 0, the prospects, left out, as step 04 does)
    and the stage macro F1 against the planted segments and stages of their `owner` persons."""
    segments = pd.read_parquet(run_dir / "04_clustering" / "segments.parquet")
    segments = segments[segments["segment_id"] != 0]
    planted = segments["customer_id"].map(owner).map(persons.set_index("person_id")["segment"])
    known = planted.notna()
    lifecycle = pd.read_parquet(run_dir / "05_lifecycle" / "lifecycle.parquet")
    stages = stage_accuracy(lifecycle, owner, persons[["person_id", "stage"]])
    return {
        "ari": float(adjusted_rand_score(planted[known], segments.loc[known, "segment_id"])),
        "clustered": int(known.sum()),
        "stage_macro_f1": stages["macro_f1"],
        "staged": int(stages["customers_evaluated"]),
    }


def report_files(trace: pd.DataFrame, rows: pd.DataFrame, defects: pd.DataFrame) -> None:
    """Print the per-file table and what was missed or wrongly quarantined, by defect and reason."""
    twice = int(trace.duplicated(["file", "row_no"]).sum())
    print(f"\nrow_trace: {len(trace):,} rows; (file, row_no) duplicated: {twice}")
    print(file_measures(trace, rows, defects).to_string())
    status = trace.drop_duplicates(["file", "row_no"])[["file", "row_no", "status", "reason"]]
    planted = defects[defects["quarantine"]].merge(status, on=["file", "row_no"], how="left")
    missed = planted[planted["status"] != "quarantined"]
    if len(missed):
        print("\nplanted bad rows not quarantined (file, defect):")
        print(missed.groupby(["file", "defect"]).size().to_string())
    flagged = status.merge(planted[["file", "row_no"]].drop_duplicates(), how="left", indicator=True)
    wrong = flagged[(flagged["status"] == "quarantined") & (flagged["_merge"] == "left_only")]
    if len(wrong):
        print("\nfalse quarantine (file, reason):")
        print(wrong.groupby(["file", "reason"]).size().sort_values(ascending=False).head(15).to_string())


def false_pair_customers(clean: pd.DataFrame, top: int = 5) -> pd.DataFrame:
    """The `top` customers holding the most pairs of rows of different persons: rows, persons, and
    their share of all such pairs."""
    cells = clean.groupby(["customer", "person_id"]).size()
    same = (cells * (cells - 1) / 2).groupby(level="customer").sum()
    size = cells.groupby(level="customer").sum()
    table = pd.DataFrame({"rows": size, "persons": cells.groupby(level="customer").size()})
    table["false_pairs"] = size * (size - 1) / 2 - same
    table["share"] = (table["false_pairs"] / table["false_pairs"].sum()).round(4)
    return table.sort_values("false_pairs", ascending=False).head(top)


def report_identity(
    clean: pd.DataFrame, persons: pd.DataFrame, keys: pd.DataFrame, identifiers: pd.DataFrame
) -> None:
    """Print the pairwise figures over clean rows, identity files, per file and per hard case, with the
    recall a resolver linking only rows that share an identifier could reach (`linkable`): by the keys of
    one person only, and by any key including shared ones."""
    frame = clean.merge(persons[["person_id", *CASES.values()]], on="person_id", how="left")
    frame["component"] = linkable(frame, keys, shared=False)
    frame["component_shared"] = linkable(frame, keys, shared=True)
    focus = {"all files": None}
    focus |= {f"pairs touching {file}": frame["file"] == file for file in sorted(frame["file"].unique())}
    focus |= {f"case: {case}": frame[column].fillna("") != "" for case, column in CASES.items()}
    lines = {}
    for label, mask in focus.items():
        lines[label] = pairwise_scores(frame["person_id"], frame["customer"], mask)
        for column, name in (("component", "linkable_unique"), ("component_shared", "linkable_any")):
            lines[label][name] = pairwise_scores(frame["person_id"], frame[column], mask)["recall"]
    ident = frame[frame["file"].isin(IDENTITY_FILES)]
    lines["identity files only"] = pairwise_scores(ident["person_id"], ident["customer"])
    print("\nidentity, pairwise over clean rows of a planted person (unlinked rows are their own customer):")
    print(pd.DataFrame(lines).T.round(4).to_string())
    split = frame.groupby("person_id")["customer"].nunique()
    print(
        f"persons {len(split):,}: in one customer {(split == 1).mean():.4f}, mean customers per person "
        f"{split.mean():.3f}; customers holding these rows {frame['customer'].nunique():,}"
    )
    owner = frame.groupby("customer")["person_id"].agg(lambda p: p.value_counts().index[0])
    right = frame["customer"].map(owner) == frame["person_id"]
    print("rows whose customer's majority person is theirs, by file:")
    print(right.groupby(frame["file"]).mean().round(4).to_string())
    worst = false_pair_customers(frame)
    held = identifiers[identifiers["customer_id"].isin(worst.index)]
    worst["identifiers"] = held.groupby("customer_id")["identifier_type"].agg(
        lambda kinds: ", ".join(f"{k} {n}" for k, n in kinds.value_counts().items())
    )
    worst["one_identifier"] = held.groupby("customer_id")["identifier_value"].agg(
        lambda values: values.iloc[0] if len(values) == 1 else ""
    )
    print("customers holding the most pairs of rows of different persons:")
    print(worst.to_string())


def customer_kinds(clean: pd.DataFrame, crosswalk: pd.DataFrame) -> pd.Series:
    """Kind of each clean row's customer: `identity` (it holds identity-file records), `event-only`
    (made from an event identifier no identity record carries) or `unlinked` (the row has none)."""
    event_only = crosswalk.groupby("customer_id")["match_method"].agg(lambda m: bool((m == "event").all()))
    kind = event_only.map({True: "event-only", False: "identity"})
    return clean["customer"].map(kind).fillna("unlinked").rename("kind")


def report_losses(clean: pd.DataFrame, crosswalk: pd.DataFrame, truth: Path) -> None:
    """Print where identity pairs are lost: missed pairs (rows of one person in two customers) by the
    kinds of the two customers, the figures over persons the identity files hold and over the others,
    and false pairs by whether the customer's own identity records hold several persons (a record
    merge) or only its events belong to another person (event resolution)."""
    frame = clean.assign(kind=customer_kinds(clean, crosswalk).to_numpy())
    cells = frame.groupby(["person_id", "customer", "kind"]).size().rename("n").reset_index()
    missed: dict[str, float] = {}
    for _, person in cells.groupby("person_id"):
        n, kinds = person["n"].to_numpy(float), person["kind"].to_numpy()
        for a in range(len(person)):
            for b in range(a + 1, len(person)):
                key = " / ".join(sorted((kinds[a], kinds[b])))
                missed[key] = missed.get(key, 0.0) + n[a] * n[b]
    table = pd.Series(missed, name="missed_pairs").sort_values(ascending=False)
    print("\nmissed pairs by the kinds of the two customers (identity / event-only / unlinked):")
    print(pd.DataFrame({"missed_pairs": table, "share": (table / table.sum()).round(4)}).to_string())
    known = frame["person_id"].isin(frame.loc[frame["file"].isin(IDENTITY_FILES), "person_id"])
    for label, rows in (("persons in the identity files", known), ("persons only in event files", ~known)):
        scores = pairwise_scores(frame.loc[rows, "person_id"], frame.loc[rows, "customer"])
        print(
            f"{label}: "
            + ", ".join(f"{k} {v:.4f}" if k != "rows" else f"rows {v:,}" for k, v in scores.items())
        )
    owners = crosswalk[crosswalk["match_method"] != "event"].merge(
        pd.read_parquet(truth / "source_records.parquet"), on=["source_system", "source_record_id"]
    )
    merged = owners.groupby("customer_id")["person_id"].nunique().loc[lambda n: n > 1].index
    false = false_pair_customers(frame, top=len(frame))
    in_merged = false.index.isin(merged)
    print(
        f"false pairs {false['false_pairs'].sum():,.0f}: in customers whose identity records hold several "
        f"persons {false.loc[in_merged, 'false_pairs'].sum():,.0f} ({int(in_merged.sum())} customers), "
        f"events of another person only {false.loc[~in_merged, 'false_pairs'].sum():,.0f} "
        f"({int((~in_merged & (false['false_pairs'] > 0)).sum())} customers)"
    )


# Event rows no resolver can place from the files: an identifier no identity record holds (or none).
NO_EVIDENCE = ("new customer", "placeholder", "unreadable identifier", "no identifier")
# Rows whose customer no identity record's identifier could settle: those above, or a shared line
# without a name that picks a holder.
UNPLACED = (*NO_EVIDENCE, "shared identifier")


def report_ceiling(
    run_dir: Path, clean: pd.DataFrame, keys: pd.DataFrame, resolution: pd.DataFrame, files: pd.DataFrame
) -> None:
    """Print where the missed pairs of persons in the identity files sit and what resolving them would
    give. Each event row of such a person outside the customer holding most of the person's identity
    rows (its home) is counted by how step 02 resolved it (`event_customers.resolved_by`); the F1 if
    those rows had joined their home shows what each rule leaves. Then every event row whose identifier
    (not a placeholder) an identity record holds, including rows without a name on a line several
    customers share (a household's, a switchboard's), which nothing in the files can place; the
    ceiling: those rows where they carry a name (what a name could settle on a shared line); beyond the
    data, placeholders too. `resolution`: the run's `event_customers`; `files`: each table's file."""
    resolution = resolution.merge(files, left_on="event_table", right_on="table")
    frame = clean.merge(
        resolution[["file", "source_row", "resolved_by"]].rename(columns={"source_row": "row_no"}),
        on=["file", "row_no"],
        how="left",
    )
    named = []
    for table, file in files.itertuples(index=False):
        clean_table = pd.read_parquet(run_dir / "01_data_audit" / f"clean_{table}.parquet")
        if "customer_name" in clean_table:
            rows = clean_table.loc[clean_table["customer_name"].notna(), "source_row"]
            named.append(pd.DataFrame({"file": file, "row_no": rows.to_numpy()}))
    named_rows = pd.concat(named) if named else pd.DataFrame(columns=["file", "row_no"])
    frame["named"] = (
        frame.merge(named_rows.assign(named=True), on=["file", "row_no"], how="left")["named"]
        .eq(True)
        .to_numpy()
    )
    key = keys.drop_duplicates(["file", "row_no"]).set_index(["file", "row_no"])["key"]
    values = pd.Series(
        key.reindex(pd.MultiIndex.from_frame(frame[["file", "row_no"]])).to_numpy(), dtype="string"
    )
    placeholder = (
        (is_placeholder_phone(values) | is_placeholder_email(values) | values.str.fullmatch(r"(.)\1{3,}"))
        .fillna(False)
        .to_numpy(dtype=bool)
    )
    identity = frame["file"].isin(IDENTITY_FILES).to_numpy()
    home = frame[identity].groupby("person_id")["customer"].agg(lambda c: c.value_counts().index[0])
    frame["home"] = frame["person_id"].map(home)
    moved = frame["customer"].ne(frame["home"]).fillna(False).to_numpy(dtype=bool)
    away = ~identity & frame["home"].notna().to_numpy(dtype=bool) & moved
    base = pairwise_scores(frame["person_id"], frame["customer"])

    def joined(rows: np.ndarray) -> dict[str, float]:
        return pairwise_scores(frame["person_id"], frame["customer"].where(~rows, frame["home"]))

    lines = {}
    for rule, rows in frame[away].groupby("resolved_by").groups.items():
        mask = np.zeros(len(frame), dtype=bool)
        mask[rows] = True
        lines[f"rule: {rule}"] = {**joined(mask), "rows_away": int(mask.sum())}
    evidence = away & ~frame["resolved_by"].isin(NO_EVIDENCE).to_numpy(dtype=bool) & ~placeholder
    shared = frame["resolved_by"].eq("shared identifier").fillna(False).to_numpy(dtype=bool)
    ceilings = {
        "beyond the names: every row an identity record's identifier reaches": evidence,
        "ceiling: as above, shared identifiers only where the row has a name": evidence
        & (~shared | frame["named"].to_numpy()),
        "beyond the data: placeholders too": evidence | (away & placeholder),
    }
    for label, mask in ceilings.items():
        lines[label] = {**joined(mask), "rows_away": int(mask.sum())}
    now = f"P {base['precision']:.4f} R {base['recall']:.4f} F1 {base['f1']:.4f}"
    print(
        "\nevent rows of persons in the identity files away from their home customer, by rule, and the "
        f"figures if they joined it (now: {now}):"
    )
    table = pd.DataFrame(lines).T
    print(table[["rows_away", "precision", "recall", "f1"]].round(4).to_string())


def report_stages(
    owners: dict[str, tuple[Path, pd.Series]],
    persons: pd.DataFrame,
    clean: pd.DataFrame,
    resolution: pd.DataFrame,
) -> None:
    """Print where stage macro F1 is lost: each world's confusion matrix (planted stage by row, labeled
    stage by column; customers mapped to persons by their identity records) and each world's macro F1
    over two groups of persons: those whose every clean order row reached a customer through an
    identifier an identity record holds, and the others (an order under an identifier no identity record
    holds, a shared identifier or a placeholder: purchases the person's own customer cannot have).
    The default world keys orders by record, so the groups come from the export world's resolution
    (its `event_customers`)."""
    orders = resolution.loc[resolution["event_table"] == "transactions", ["source_row", "resolved_by"]]
    placed = clean[clean["table"] == "transactions"].merge(
        orders.rename(columns={"source_row": "row_no"}), on="row_no"
    )
    unplaced = placed["resolved_by"].isin(UNPLACED)
    lost = set(placed.loc[unplaced, "person_id"])
    truth = persons[["person_id", "stage"]]
    lines = {}
    for label, (run_dir, owner) in owners.items():
        lifecycle = pd.read_parquet(run_dir / "05_lifecycle" / "lifecycle.parquet")
        accuracy = stage_accuracy(lifecycle, owner, truth)
        print(f"\n{label}: stages, planted (rows) by labeled (columns), macro F1 {accuracy['macro_f1']:.4f}")
        print(accuracy["confusion"].to_string())
        print(accuracy["report"].T.to_string())
        for group, keep in (
            ("every order placed", ~owner.isin(lost)),
            ("an order not placed", owner.isin(lost)),
        ):
            scores = stage_accuracy(lifecycle, owner[keep], truth)
            lines[f"{label}, persons with {group}"] = {
                "customers": scores["customers_evaluated"],
                "stage_macro_f1": scores["macro_f1"],
            }
    print(
        f"\nstage macro F1 by whether the person's orders all reached an identifier an identity record "
        f"holds ({len(lost):,} persons have an order that did not):"
    )
    print(pd.DataFrame(lines).T.round(4).to_string())


def home_customers(crosswalk: pd.DataFrame, source_records: pd.DataFrame) -> pd.Series:
    """Each planted person's home customer: the one holding most of the person's identity records (the
    smallest customer id on a tie)."""
    held = crosswalk.merge(source_records, on=["source_system", "source_record_id"])
    counts = held.groupby(["person_id", "customer_id"]).size().rename("n").reset_index()
    best = counts.sort_values(["person_id", "n", "customer_id"], ascending=[True, False, True])
    return best.drop_duplicates("person_id").set_index("person_id")["customer_id"]


def report_linked(
    run_dir: Path,
    truth: Path,
    persons: pd.DataFrame,
    clean: pd.DataFrame,
    resolution: pd.DataFrame,
    files: pd.DataFrame,
    owner: pd.Series,
) -> None:
    """Print what the evidence the export lacks costs: identity F1 over the clean rows without the rows
    no identity record's identifier could place, and the figures had those rows joined their person's
    home customer (`home_customers`; persons without identity records keep theirs): for order rows
    only, then for all event rows. For each, steps 03-05 run again in `<outputs>/linked_<rows>` (the
    run's config and clustering choice, its step 01 linked, step 02 copied with `event_customers`
    rewritten): planted-segment ARI and stage macro F1 by identity records, as the run's own. `files`:
    each table's file; `owner`: the person of each customer by its identity records."""
    crosswalk = pd.read_parquet(run_dir / "02_identity_merge" / "crosswalk.parquet")
    source_records = pd.read_parquet(truth / "source_records.parquet")
    home = home_customers(crosswalk, source_records)
    rows = pd.read_parquet(truth / "export_rows.parquet", columns=["file", "row_no", "person_id"])
    events = resolution.assign(file=resolution["event_table"].map(files.set_index("table")["file"])).merge(
        rows.rename(columns={"row_no": "source_row"}), on=["file", "source_row"], how="left"
    )
    events["home"] = events["person_id"].map(home)
    unplaced = events["resolved_by"].isin(UNPLACED) & events["home"].notna()
    unplaced &= events["customer_id"].ne(events["home"]).fillna(True)
    resolved = clean.merge(
        events[["file", "source_row", "resolved_by", "home"]].rename(columns={"source_row": "row_no"}),
        on=["file", "row_no"],
        how="left",
    )
    lines = {"now": pairwise_scores(resolved["person_id"], resolved["customer"])}
    for label, left_out in (
        (
            "without order rows no identifier placed",
            resolved["resolved_by"].isin(UNPLACED) & (resolved["table"] == "transactions"),
        ),
        ("without event rows no identifier placed", resolved["resolved_by"].isin(UNPLACED)),
    ):
        kept = resolved[~left_out.to_numpy()]
        lines[label] = pairwise_scores(kept["person_id"], kept["customer"])
    chosen = json.loads((run_dir / "04_clustering" / "step.json").read_text())["chosen"]
    lines["now"] |= planted_agreement(run_dir, owner, persons)
    for label, moved in (
        ("orders joined their person", unplaced & (events["event_table"] == "transactions")),
        ("events joined their person", unplaced),
    ):
        placed = resolved.merge(
            events.loc[moved, ["file", "source_row", "home"]].rename(
                columns={"source_row": "row_no", "home": "to"}
            ),
            on=["file", "row_no"],
            how="left",
        )
        lines[label] = pairwise_scores(
            placed["person_id"], placed["customer"].where(placed["to"].isna(), placed["to"])
        )
        folder = run_dir.parent.parent / f"linked_{label.split()[0]}"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        shutil.copy(run_dir / "config.yml", folder / "config.yml")
        (folder / "01_data_audit").symlink_to(run_dir / "01_data_audit")
        shutil.copytree(run_dir / "02_identity_merge", folder / "02_identity_merge")
        rewritten = resolution.copy()
        rewritten.loc[moved.to_numpy(), "customer_id"] = events.loc[moved, "home"].to_numpy()
        rewritten.to_parquet(folder / "02_identity_merge" / "event_customers.parquet", index=False)
        run_features(open_step("03_features", str(folder)))
        run_clustering(open_step("04_clustering", str(folder), overrides={"clustering.choose": chosen}))
        run_lifecycle(open_step("05_lifecycle", str(folder)))
        lines[label] |= {"rows_moved": int(moved.sum()), **planted_agreement(folder, owner, persons)}
    print(
        "\nwhat the missing evidence costs (identity pairwise over clean rows; ARI and stage macro F1 by "
        "identity records, steps 03-05 re-run with the rows joined):"
    )
    table = pd.DataFrame(lines).T
    columns = ["rows", "rows_moved", "precision", "recall", "f1", "ari", "stage_macro_f1"]
    print(table.reindex(columns=columns).round(4).to_string())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--root", type=Path, default=Path("/tmp/bench_export"))
    parser.add_argument("--reuse", action="store_true", help="reuse the newest finished run of each world")
    parser.add_argument(
        "--audit-only",
        type=int,
        metavar="N",
        help="only time step 01 on both styles at N people (e.g. 1000000)",
    )
    args = parser.parse_args()
    root = args.root.resolve()
    if args.audit_only:
        audit_seconds(root, args.audit_only, args.seed)
        return
    raw, truth, reference_date = timed("export world", world, root, "export", args.customers, args.seed)
    config = timed(
        "init-config", propose, raw, reference_date, root / f"proposed_{args.customers}_{args.seed}.yml"
    )
    print(f"proposed config: {config} (reference date {reference_date})")
    export_run = timed(
        "export run",
        run,
        config,
        [f"demo.truth_dir={truth}"],
        root / f"outputs_export_{args.customers}_{args.seed}",
        args.reuse,
    )
    default_raw, default_truth, _ = timed("default world", world, root, "default", args.customers, args.seed)
    default_run = timed(
        "default run",
        run,
        None,
        [
            f"demo.customers={args.customers}",
            f"demo.seed={args.seed}",
            f"data.raw_dir={default_raw}",
            f"demo.truth_dir={default_truth}",
        ],
        root / f"outputs_default_{args.customers}_{args.seed}",
        args.reuse,
    )
    for label, run_dir in (("export", export_run), ("default", default_run)):
        steps = json.loads((run_dir / "run.json").read_text())["steps"]
        print(f"{label} run {run_dir}: " + ", ".join(f"{s} {r['seconds']:.1f} s" for s, r in steps.items()))

    trace = pd.read_parquet(export_run / "02_identity_merge" / "row_trace.parquet")
    rows = pd.read_parquet(truth / "export_rows.parquet")
    defects = pd.read_parquet(truth / "export_defects.parquet")
    persons = with_recycled(pd.read_parquet(truth / "persons.parquet"), truth)
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        report_files(trace, rows, defects)
        clean = clean_rows(trace, rows, defects)
        identifiers = pd.read_parquet(export_run / "02_identity_merge" / "identifiers.parquet")
        keys = row_keys(export_run, trace)
        report_identity(clean, persons, keys, identifiers)
        report_losses(clean, pd.read_parquet(export_run / "02_identity_merge" / "crosswalk.parquet"), truth)
        resolution = pd.read_parquet(export_run / "02_identity_merge" / "event_customers.parquet")
        files = trace[["table", "file"]].drop_duplicates().astype(str)
        report_ceiling(export_run, clean, keys, resolution, files)
        figures, owners = {}, {}
        for label, run_dir, folder in (
            ("export", export_run, truth),
            ("default", default_run, default_truth),
        ):
            crosswalk = pd.read_parquet(run_dir / "02_identity_merge" / "crosswalk.parquet")
            owner = customer_person(crosswalk, pd.read_parquet(folder / "source_records.parquet"))
            owners[label] = (run_dir, owner)
            figures[f"{label}, by identity records"] = planted_agreement(run_dir, owner, persons)
            recorded = {}
            for step in ("04_clustering", "05_lifecycle"):
                recorded |= json.loads((run_dir / step / "step.json").read_text())
            figures[f"{label}, by identity records"]["recorded_ari"] = recorded.get("planted_ari", np.nan)
            figures[f"{label}, by identity records"]["recorded_f1"] = recorded.get("stage_macro_f1", np.nan)
        figures["export, by all rows"] = planted_agreement(export_run, person_by_rows(trace, rows), persons)
        whole = clean.groupby("person_id")["customer"].nunique().loc[lambda n: n == 1].index
        owner = owners["export"][1]
        figures["export, identity records, unsplit persons"] = planted_agreement(
            export_run, owner[owner.isin(whole)], persons
        )
        print(
            "\nplanted segments (ARI, clustered customers) and stages (macro F1); unsplit persons: all their"
            " clean rows in one customer:"
        )
        print(pd.DataFrame(figures).T.round(4).to_string())
        report_stages(owners, persons, clean, resolution)
        export_owner = owners["export"][1]
        timed("linked", report_linked, export_run, truth, persons, clean, resolution, files, export_owner)


if __name__ == "__main__":
    main()
