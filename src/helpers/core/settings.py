"""The one typed schema of the run config: every section, key, type and default, written once.

`load_config` validates a YAML config (and its `--set` overrides) through `WorkbenchConfig`;
notebook parameters go through the same model (`StepContext.setting`). An unknown key or a
wrong type raises `ConfigError` naming the file, the key path and the closest valid key,
before any step runs.
"""

from __future__ import annotations

import difflib
import re
from datetime import date
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

ClusteringAlgorithm = Literal[
    "kmeans", "minibatch_kmeans", "gmm_diag", "gmm_full", "ward", "birch", "hdbscan"
]
ALGORITHM_NAMES: tuple[str, ...] = ClusteringAlgorithm.__args__
Share = Annotated[float, Field(ge=0, le=1)]
PositiveInt = Annotated[int, Field(gt=0)]


class Section(BaseModel):
    """A config section: unknown keys are errors, values are checked and coerced once."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class RunSettings(Section):
    seed: int = 42
    reference_date: date = Field(description="'as of' date for features, lifecycle and call lists")
    # shared: every notebook in one kernel (imports paid once; the namespace is reset between
    # notebooks); per_step: a fresh kernel per notebook (all memory returned between steps);
    # auto: shared below 1 GiB of raw files (helpers.core.runner.uses_shared_kernel)
    kernel: Literal["auto", "shared", "per_step"] = "auto"
    # shared kernels with SQL on DuckDB only: two kernels take turns, and a step starts as soon as the
    # previous step's run_step cell has written its artifacts, while that step still draws its charts
    overlap_steps: bool = True


class DemoSettings(Section):
    customers: PositiveInt = 20_000
    seed: int = 7
    truth_dir: str | None = None
    # default: the canonical files; export: the same world as a Chinese call center's own exports
    style: Literal["default", "export"] = "default"


class ColumnSource(Section):
    """A canonical column built from the file (`data.tables.<table>.columns.<canonical>`).

    Exactly one of `column`, `constant` or `concat`. With `column`, `equals` turns the column into
    a boolean (true where the value is one of the listed ones, e.g. 订单状态 in [已退款]); `formats`
    lists date/datetime formats tried in order for this column (overrides the table's).
    """

    column: str | None = None
    constant: str | None = None
    concat: list[str] | None = Field(default=None, min_length=1)  # file columns joined by `separator`
    separator: str = ""
    equals: list[str] | None = Field(default=None, min_length=1)
    formats: list[str] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _one_source(self) -> ColumnSource:
        given = [name for name in ("column", "constant", "concat") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of column, constant, concat (got {given or 'none'})")
        if self.equals is not None and self.column is None:
            raise ValueError("equals needs column")
        return self


EventKey = Literal["record", "phone", "email", "member_no", "identifier"]


class TableSettings(Section):
    """How one canonical table is read (`data.tables.<table>`); a table left out is absent."""

    file: str
    format: Literal["csv", "excel", "parquet"] = "csv"
    encoding: str = "utf-8"
    sheet: str | int = 0
    skip_rows: Annotated[int, Field(ge=0)] = 0  # title and blank rows above the header row
    delimiter: str | None = None
    # Formats tried in order (strptime codes; also "excel" for Excel date cells/serials, "yyyymmdd").
    date_format: str | list[str] | None = None
    datetime_format: str | list[str] | None = None
    # canonical column -> file column, or a constant / concatenation / condition (ColumnSource)
    columns: dict[str, str | ColumnSource] = Field(default_factory=dict)
    # canonical column -> {value in the file: canonical value}; values outside a map are counted
    # per column, quarantined where the column is required, never turned into NULL silently
    values: dict[str, dict[str, str]] = Field(default_factory=dict)
    # event tables: how rows point at their customer. record: an identity-table key as in the
    # canonical contract; phone / email / member_no: the `customer_ref` column holds that
    # identifier; identifier: `customer_ref` holds a phone, an e-mail or a member number, per row
    key_by: EventKey = "record"


class DataSettings(Section):
    raw_dir: str = "data/raw/demo"
    tables: dict[str, TableSettings] = Field(default_factory=dict)
    home_region: str = "CN"  # phonenumbers region for numbers without a country code
    home_area_code: str | None = None  # e.g. "21": bare 7-8 digit local numbers get this area code

    @field_validator("home_region")
    @classmethod
    def _known_region(cls, value: str) -> str:
        import phonenumbers  # only when a config is validated

        if value.upper() not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"unknown phone region {value!r}: use a two-letter country code such as CN")
        return value.upper()

    @field_validator("home_area_code", mode="before")
    @classmethod
    def _area_code_text(cls, value: object) -> object:
        if isinstance(value, int):
            raise ValueError('write the area code in quotes, e.g. "021": YAML reads 021 as the number 17')
        if isinstance(value, str) and not re.fullmatch(r"0?[1-9]\d{1,3}", value.strip()):
            raise ValueError(f'{value!r} is no area code: 2-4 digits, e.g. "21" or "0755"')
        return value.strip() if isinstance(value, str) else value


class AuditSettings(Section):
    max_age: PositiveInt = 100
    min_age: Annotated[int, Field(ge=0)] = 14
    max_unparseable_share: Share = 0.5
    warn_quarantine_share: Share = 0.05  # a table quarantining more of its rows is reported loudly
    max_quarantine_share: Share = 0.5  # ... and above this share step 01 stops
    memory_limit: str = "2GB"
    threads: PositiveInt = 2
    contract_sample_rows: PositiveInt = 100_000
    quality_weights: dict[Literal["validity", "completeness", "uniqueness", "integrity"], float] = Field(
        default_factory=lambda: {"validity": 0.4, "completeness": 0.2, "uniqueness": 0.2, "integrity": 0.2}
    )


class IdentitySettings(Section):
    method: Literal["deterministic", "probabilistic"] = "probabilistic"
    match_threshold: Share = 0.9
    max_people_per_identifier: PositiveInt = 4
    review_sample: Annotated[int, Field(ge=0)] = 40
    # whose customer ids this run carries over: auto (the newest earlier run on the same raw data),
    # none, or a run id / run folder (`helpers.identity.history`)
    previous_run: str = "auto"
    # keep the unchanged records of each previous customer together when the previous run used the
    # same identity method (off: every run re-decides all links; ids are still carried over)
    keep_previous_links: bool = True


class FeaturesSettings(Section):
    value_tiers: dict[Literal["high", "middle"], Share] = Field(
        default_factory=lambda: {"high": 0.8, "middle": 0.4}
    )
    clv_horizon_months: PositiveInt = 12
    clv_model: Literal["mbgnbd", "bgnbd"] = "mbgnbd"
    clv_period_days: PositiveInt = 30
    clv_sample_size: PositiveInt = 50_000
    clv_min_repeat_customers: Annotated[int, Field(ge=0)] = 30
    repeat_contact_days: PositiveInt = 7
    max_levels: PositiveInt = 20
    winsor_quantile: Share = 0.99
    duckdb_memory_limit: str | None = "2GB"
    duckdb_threads: PositiveInt | None = None
    groups: dict[
        Literal[
            "value", "lifetime_value", "behaviour", "service", "marketing", "demographic", "geographic",
            "technographic", "psychographic", "firmographic", "lifecycle",
        ],
        Annotated[float, Field(ge=0)],
    ] = Field(
        default_factory=lambda: {
            "value": 1.0, "lifetime_value": 0.5, "behaviour": 1.0, "service": 1.0, "marketing": 0.5,
            "demographic": 0.5, "geographic": 0.3, "technographic": 0.5, "psychographic": 0.5,
            "firmographic": 0.5, "lifecycle": 0.0,
        }
    )  # fmt: skip


class ClusteringSettingsSection(Section):
    algorithms: list[ClusteringAlgorithm] = Field(default_factory=lambda: list(ALGORITHM_NAMES), min_length=1)
    k_min: Annotated[int, Field(ge=2)] = 2
    k_max: Annotated[int, Field(ge=2)] = 12
    sample_size: PositiveInt = 6_000
    small_sample_size: PositiveInt = 3_000
    score_sample_size: PositiveInt = 2_000
    stability_refits: Annotated[int, Field(ge=0)] = 10  # bootstrap refits per candidate (2+ for an se)
    stability_sample_size: PositiveInt = 1_000
    stability_z: Annotated[float, Field(ge=0)] = 2.0  # selection uses stability mean - z x its se
    min_segment_share: Share = 0.01
    min_segment_size: PositiveInt = 20  # fitted customers a segment needs (and min_segment_share)
    small_segment_share: Share = 0.03  # segments smaller than this must pass min_segment_jaccard
    min_segment_jaccard: Share = 0.75  # mean bootstrap Jaccard of a stable segment (fpc::clusterboot)
    min_stability: Share = 0.7
    min_business_ratio: Share = 0.5
    weights: dict[Literal["stability", "silhouette", "davies_bouldin", "business_separation"], float] = Field(
        default_factory=lambda: {
            "stability": 0.25, "silhouette": 0.25, "davies_bouldin": 0.2, "business_separation": 0.3,
        }
    )  # fmt: skip
    choose: str = Field("auto", pattern=r"^(auto|[a-z_]+:\d+)$")
    # auto choice among admissible candidates: the most segments that all reproduce on the bootstrap
    # refits among near-ties of the best combined score (else the best score), or the best score
    prefer: Literal["score", "more_segments"] = "more_segments"
    column_scaling: Literal["standardize", "as_is"] = "standardize"
    components: Annotated[int, Field(ge=0)] = 20
    prospects: Literal["separate", "cluster"] = "separate"
    map_fit_size: PositiveInt = 3_000  # the 2-D map's projection is fitted on this many customers
    map_max_points: PositiveInt = 6_000  # customers shown on the 2-D map
    threads: PositiveInt = 1
    naming_rules: str = "config/naming_rules.yml"

    @model_validator(mode="after")
    def _k_range(self) -> ClusteringSettingsSection:
        if self.k_min > self.k_max:
            raise ValueError(f"k_min ({self.k_min}) must not exceed k_max ({self.k_max})")
        return self


class LifecycleSettings(Section):
    rules: str = "config/lifecycle_rules.yml"


class PrioritySettings(Section):
    upside_quantile: Share = 0.75
    upside_weight: Share = 0.25
    response_prior_strength: Annotated[float, Field(ge=0)] = 10
    max_prospect_share: Share = 0.2


class TeamSettings(Section):
    agents: Annotated[int, Field(ge=0)]  # 0: the team exists but is unstaffed this period
    hours_per_day: Annotated[float, Field(gt=0, le=24)]
    calls_per_hour: Annotated[float, Field(gt=0)]
    tiers: list[Literal["high", "middle", "low"]] = Field(min_length=1)
    cost_per_call: Annotated[float, Field(ge=0)] = 0.0


class MigrationSettings(Section):
    previous_run: str = "auto"
    min_stability: Share = 0.7
    max_size_change: Annotated[float, Field(ge=0)] = 0.25


class StrategySettingsSection(Section):
    playbook: str = "config/playbook.yml"
    period_days: PositiveInt = 30
    working_days_per_week: Annotated[float, Field(gt=0, le=7)] = 5
    agent_cost_per_hour: Annotated[float, Field(ge=0)] = 60.0
    priority: PrioritySettings = Field(default_factory=PrioritySettings)
    capacity: dict[str, TeamSettings] = Field(  # teams fill in this order
        default_factory=lambda: {
            "account_managers": TeamSettings(
                agents=4, hours_per_day=6, calls_per_hour=2, tiers=["high"], cost_per_call=60.0
            ),
            "callback_team": TeamSettings(
                agents=10, hours_per_day=6, calls_per_hour=6, tiers=["middle"], cost_per_call=10.0
            ),
            "outbound_team": TeamSettings(
                agents=6, hours_per_day=6, calls_per_hour=10, tiers=["low"], cost_per_call=5.0
            ),
        },
        min_length=1,
    )
    migration: MigrationSettings = Field(default_factory=MigrationSettings)


class ReportSettings(Section):
    language: Literal["zh", "en"] = "zh"  # what managers and agents read: reports, call list, playbook


class EngineSettings(Section):
    """Which SQL engine runs the steps' queries (`helpers.engine.connect`): embedded DuckDB by default,
    or Apache Spark (the optional `spark` extra) on `spark_master` with extra `spark_conf` settings."""

    name: Literal["duckdb", "spark"] = "duckdb"
    spark_master: str = "local[*]"  # e.g. spark://host:7077, yarn, k8s://...
    spark_conf: dict[str, str] = Field(default_factory=dict)  # e.g. {spark.executor.memory: 8g}


class WorkbenchConfig(Section):
    """The whole run config."""

    run: RunSettings
    demo: DemoSettings = Field(default_factory=DemoSettings)
    data: DataSettings = Field(default_factory=DataSettings)
    audit: AuditSettings = Field(default_factory=AuditSettings)
    identity: IdentitySettings = Field(default_factory=IdentitySettings)
    features: FeaturesSettings = Field(default_factory=FeaturesSettings)
    clustering: ClusteringSettingsSection = Field(default_factory=ClusteringSettingsSection)
    lifecycle: LifecycleSettings = Field(default_factory=LifecycleSettings)
    strategy: StrategySettingsSection = Field(default_factory=StrategySettingsSection)
    report: ReportSettings = Field(default_factory=ReportSettings)
    engine: EngineSettings = Field(default_factory=EngineSettings)


def validation_messages(error: ValidationError) -> list[str]:
    """One line per problem: the key path, what is wrong, and for an unknown key the closest valid one."""
    lines = []
    for problem in error.errors():
        path = [str(part) for part in problem["loc"]]
        dotted = ".".join(path)
        if problem["type"] == "extra_forbidden":
            known = _known_keys(path[:-1])
            closest = difflib.get_close_matches(path[-1], known, n=1, cutoff=0.6)
            kind = "section" if len(path) == 1 else "key"
            hint = f"did you mean {closest[0]}?" if closest else f"valid: {', '.join(known)}"
            lines.append(f"{dotted}: unknown {kind}; {hint}")
        elif problem["type"] == "missing":
            lines.append(f"{dotted}: required key is missing")
        else:
            lines.append(f"{dotted}: {problem['msg']} (got {problem.get('input')!r})")
    return lines


def _known_keys(parent: list[str]) -> list[str]:
    """Valid keys under the key path `parent`, read from the schema."""
    node: Any = WorkbenchConfig
    for part in parent:
        if isinstance(node, type) and issubclass(node, BaseModel):
            node = node.model_fields[part].annotation
        else:  # dict[str, Section] (data.tables, strategy.capacity): any name, its value's model
            node = get_args(node)[-1]
    return list(node.model_fields) if isinstance(node, type) and issubclass(node, BaseModel) else []
