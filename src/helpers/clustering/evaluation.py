"""Step 04 against a demo world's planted truth (evaluation only: the truth never decides anything).

Where the truth files of the run's demo world exist (`demo.truth_dir`, else `data/truth/<raw dir
name>`), the chosen segmentation and every candidate are compared with the planted segments
(adjusted Rand index on the clustered customers; 1 = the same partition, 0 = chance).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from sklearn.metrics import adjusted_rand_score

from helpers.clustering.candidates import agreement
from helpers.clustering.step import ClusteringResult
from helpers.core.config import resolve_path
from helpers.core.context import StepContext


@dataclass
class PlantedEvaluation:
    """The chosen segmentation and the candidates against the planted segments."""

    chosen: str
    ari: float  # chosen segmentation vs planted, on the clustered customers with a planted segment
    n_planted: int  # planted segments among those customers
    n_known: int  # clustered customers with a planted segment
    per_candidate: pd.Series  # ARI of every candidate on the comparison's fit rows ("algorithm:k")
    index_choices: pd.DataFrame  # what each criterion alone would pick (criterion, choice, value)
    crosstab: pd.DataFrame  # segment name x planted segment

    def lines(self) -> list[str]:
        """Three lines: the chosen candidate's ARI, each criterion's pick's ARI, the best candidates."""
        return [
            f"Chosen {self.chosen}: ARI {self.ari:.3f} vs the {self.n_planted} planted segments "
            f"on {self.n_known:,} clustered customers",
            "Each criterion alone would pick: "
            + ", ".join(
                f"{r.criterion} {r.choice} (ARI {self.per_candidate[r.choice]:.2f})"
                for r in self.index_choices.itertuples()
            ),
            "Best candidates by ARI (fit sample): "
            + ", ".join(
                f"{key} {value:.2f}"
                for key, value in self.per_candidate.sort_values(ascending=False).head(5).items()
            ),
        ]


def truth_dir(ctx: StepContext) -> Path:
    """Where the run's demo world keeps its truth files."""
    raw_name = resolve_path(ctx.settings.data.raw_dir).name
    return resolve_path(ctx.settings.demo.truth_dir or f"data/truth/{raw_name}")


def evaluate_planted(ctx: StepContext, result: ClusteringResult) -> PlantedEvaluation | None:
    """Compare `result` with the planted segments and record `planted_ari` and `planted_segments`;
    None (nothing read, nothing recorded) when the run's data has no truth files."""
    folder = truth_dir(ctx)
    if not (folder / "persons.parquet").is_file():
        return None
    from helpers.clustering.synthetic import planted_segments  # reads the demo world's truth

    planted = (
        planted_segments(
            ctx.path("crosswalk.parquet", "02_identity_merge"),
            folder / "source_records.parquet",
            pd.read_parquet(folder / "persons.parquet", columns=["person_id", "segment", "stage"]),
            ctx.settings.engine,
        )
        .set_index("customer_id")["segment"]
        .reindex(result.matrix.index)
        .to_numpy()
    )
    clustered = result.clustered
    known = clustered & pd.notna(planted)
    segment_id = result.segments["segment_id"].to_numpy()
    ari = adjusted_rand_score(planted[known], segment_id[known])
    n_planted = int(pd.Series(planted[known]).nunique())
    ctx.record(planted_ari=round(ari, 3), planted_segments=n_planted)
    return PlantedEvaluation(
        chosen=result.chosen,
        ari=float(ari),
        n_planted=n_planted,
        n_known=int(known.sum()),
        per_candidate=agreement(result.comparison, result.x[result.fitted], planted[result.fitted]),
        index_choices=result.index_choices,
        crosstab=pd.crosstab(
            result.segments["segment_name"].to_numpy()[known],
            planted[known],
            rownames=["segment"],
            colnames=["planted segment"],
        ),
    )
