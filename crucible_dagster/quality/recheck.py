"""Re-check a recorded run: today's quality targets and regression gate over what its run
directory kept, without running the experiment again.

This is what a check executed alone does (the Dagster UI's "Execute" on one check): after a
threshold was edited or a new baseline accepted, the latest report is judged again from its
recorded metrics and scores, not re-computed.
"""

from __future__ import annotations

from pathlib import Path

from crucible_dagster.experiment.ir import Experiment
from crucible_dagster.quality.gate import GATE_NAME, evaluate_gate, gate_verdict
from crucible_dagster.quality.targets import Verdict, evaluate_target, targets_of
from crucible_dagster.run_history.records import RecordError, read_run, shown
from crucible_dagster.runtime.context import Context
from crucible_dagster.runtime.run_dirs import MANIFEST


def recheck_run(experiment: Experiment, run_dir: str | Path) -> dict[str, Verdict]:
    """Each quality target's verdict (by its name) and the gate's (``GATE_NAME``) on the run
    recorded in ``run_dir``. ``RecordError`` names the file and field when the record cannot
    be used: missing, torn, or another experiment's run."""
    read = read_run(run_dir)
    if read.manifest.experiment_id != experiment.id:
        found = f"{shown(read.manifest.experiment_id)} (another experiment's run)"
        raise RecordError(Path(run_dir) / MANIFEST, "experiment_id", repr(experiment.id), found)
    metrics = read.manifest.metrics
    verdicts = {t.name: evaluate_target(t, metrics) for t in targets_of(experiment)}
    gate = experiment.regression_baseline
    if gate is not None:
        recorded = Context(
            experiment_id=experiment.id,
            run_id=read.manifest.run_id,
            # the seed and data the run had, so the gate pairs the units that run scored
            experiment=experiment.model_copy(update={"seed": read.manifest.seed}),
            metrics=metrics,
            assigns={"data_fingerprints": read.manifest.data_fingerprints},
            run_dir=str(read.run_dir),
        )
        verdicts[GATE_NAME] = gate_verdict(gate, evaluate_gate(recorded, gate))
    return verdicts
