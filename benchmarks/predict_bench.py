"""Issue 24 figure: the per-sample overhead of the ``predict`` stage against a bare
``concurrent.futures.ThreadPoolExecutor`` sending the same requests to the same local server
at the same concurrency (goal <= 1.2x).

The server is the bundled one (``python -m crucible_dagster.contrib.llm_server``) in a
process of its own, so its work does not share the client's interpreter. Ours is the predict
stage as a run calls it: the prompt rendered for every sample (qa_eval's "worked" prompt with
two shots), the OpenAI-compatible backend (response cache off, so every sample is a request),
the per-sample table built and written as Parquet in the run directory. The baseline posts the
same request bodies with ``http.client``, one connection each as ours does, and parses each
answer's JSON for its text. Both sides alternate, with Python's logging as a run leaves it
(nothing configured: warnings and errors only) on both.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from benchmarks.harness import Row, paired

SAMPLES = 400
CONCURRENCY = 8
PROMPT = {
    "name": "worked",
    "system": "Solve the problem step by step, then give the final number.",
    "user": "Question: {{ input }}\nAnswer:",
    "few_shot": {"split": "train", "n": 2},
}


def _server() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "crucible_dagster.contrib.llm_server", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def _experiment(url: str) -> Any:
    from crucible_dagster import Experiment

    return Experiment.model_validate(
        {
            "id": "predict_bench",
            "seed": 7,
            "dataset": {"name": "gsm8k", "split": "qa_demo"},
            "pipeline": [{"name": "predict", "options": _options(url)}],
        }
    )


def _options(url: str) -> dict[str, Any]:
    backend = {
        "id": "openai_compatible",
        "endpoint_url": url,
        "options": {"model": "qa-large", "cache": False, "concurrency": CONCURRENCY},
    }
    return {"prompt": PROMPT, "variants": {"model": backend}}


def _context(url: str, run_dir: Path, samples: int = SAMPLES) -> tuple[Any, Any, Any]:
    """The stage, its options and a context holding ``samples`` examples (the 40 qa_demo
    questions over and over, each under its own id), as the runner hands them to the first
    stage."""
    import pandas as pd

    from crucible_dagster.datasets import load_dataset
    from crucible_dagster.evaluation.predict import PredictOptions, PredictStage
    from crucible_dagster.runtime.context import Context

    experiment = _experiment(url)
    assert experiment.dataset is not None
    loaded = load_dataset(experiment.dataset, 7).examples
    repeats = -(-samples // len(loaded))
    examples = pd.concat([loaded] * repeats).iloc[:samples].reset_index(drop=True)
    examples.index = [f"q{i}" for i in range(samples)]
    ctx = Context(
        "predict_bench", "bench", experiment, assigns={"examples": examples}, run_dir=str(run_dir)
    )
    return PredictStage(), PredictOptions.model_validate(_options(url)), ctx


def _bodies(stage_options: Any, ctx: Any, url: str) -> list[bytes]:
    """What the stage sends, rendered once: the baseline posts exactly these."""
    from crucible_dagster.backends.registry import build_backend
    from crucible_dagster.evaluation.predict import predict_requests

    backend: Any = build_backend(stage_options.variants["model"])
    return [
        json.dumps(backend.request_body(r)).encode() for r in predict_requests(ctx, stage_options)
    ]


def _bare(url: str, bodies: list[bytes]) -> list[str]:
    host_port = url.removeprefix("http://").split("/", 1)[0]
    host, port = host_port.split(":")
    path = "/" + url.removeprefix("http://").split("/", 1)[1] + "/chat/completions"
    headers = {"Content-Type": "application/json", "Accept": "application/json"}

    def one(body: bytes) -> str:
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        try:
            conn.request("POST", path, body, headers)
            answer = json.loads(conn.getresponse().read())
        finally:
            conn.close()
        return str(answer["choices"][0]["message"]["content"])

    with ThreadPoolExecutor(max_workers=CONCURRENCY) as pool:
        return list(pool.map(one, bodies))


def predict_rows() -> list[Row]:
    proc, url = _server()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            stage, options, ctx = _context(url, Path(tmp))
            bodies = _bodies(options, ctx, url)

            def ours() -> None:
                out = stage.run(ctx, options)
                table = out.assigns["predictions"]
                assert len(table) == SAMPLES and table["error"].isna().all()

            def bare() -> None:
                assert len(_bare(url, bodies)) == SAMPLES

            a, b, others = paired(ours, bare, repeats=5)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    print(
        f"settings: {SAMPLES} samples, concurrency {CONCURRENCY} on both sides, the bundled "
        "server in its own process, response cache off; Python logging unconfigured on both"
    )
    per_sample = f"{SAMPLES} samples: per sample = figure / {SAMPLES}"
    return [
        Row(
            f"predict stage, {SAMPLES} requests at {CONCURRENCY} in flight",
            a,
            b,
            "ThreadPoolExecutor + http.client",
            "<= 1.2x",
            others,
            note=per_sample,
        )
    ]
