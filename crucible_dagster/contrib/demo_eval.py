"""Printed by ``make demo-eval``: the bundled LLM server started for the run, the job's
progress and the sweep's summary (``demo_summary``), then what the server counted.

``python -m crucible_dagster.contrib.demo_eval EXPERIMENT -- COMMAND...`` starts the server
(``contrib/llm_server``) in this process on a free port of 127.0.0.1, points
``CRUCIBLE_LLM_URL`` at it and ``CRUCIBLE_CACHE_DIR`` at a fresh folder (so every request of
the run reaches the server and is counted, however often the demo runs), runs COMMAND (the
Makefile's ``dagster job execute``), and stops the server however the demo ends.
"""

from __future__ import annotations

import os
import sys
import tempfile

from crucible_dagster.contrib.demo_summary import follow, say
from crucible_dagster.contrib.llm_server import ServerState, llm_server
from crucible_dagster.contrib.simulated_answers import MODEL_ACCURACY

#: the environment variable qa_eval's backend reads its API root from (options.base_url_env)
URL_ENV = "CRUCIBLE_LLM_URL"
CACHE_ENV = "CRUCIBLE_CACHE_DIR"


def server_line(stats: dict[str, object]) -> str:
    """What the server was asked, as it counted it."""
    requests = stats.get("requests")
    by_model = requests if isinstance(requests, dict) else {}
    models = ", ".join(f"{name} {count}" for name, count in by_model.items()) or "none"
    refused = stats.get("rejected")
    return (
        f"The server answered {sum(by_model.values())} requests ({models}): "
        f"{stats.get('prompt_tokens')} prompt and {stats.get('completion_tokens')} completion "
        f"tokens; {sum(refused.values()) if isinstance(refused, dict) else 0} refused"
    )


def run_demo(experiment_id: str, command: list[str]) -> int:
    """The job's exit code (or the summary's), the server stopped before it returns."""
    with (
        llm_server(ServerState(keep_requests=False)) as (url, state),
        tempfile.TemporaryDirectory(prefix="crucible-demo-cache-") as cache,
    ):
        os.environ[URL_ENV] = url
        os.environ[CACHE_ENV] = cache
        say(f"Bundled LLM server at {url} (models: {', '.join(MODEL_ACCURACY)})")
        code = follow(experiment_id, command)
        say(server_line(state.stats()))
    return code


def _cli(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print("usage: demo_eval EXPERIMENT -- COMMAND...", file=sys.stderr)
        return 2
    return run_demo(argv[0], argv[2:])


if __name__ == "__main__":
    sys.exit(_cli(sys.argv[1:]))
