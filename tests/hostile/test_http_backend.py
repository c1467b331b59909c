"""Hostile answers to the OpenAI-compatible backend, from a real HTTP server on 127.0.0.1.

Each case asserts the property: the one sample's error names the URL, the status and what was
wrong, the other samples keep their answers, redirects go nowhere, a drip ends at the deadline,
waits and bodies are capped, the cache never serves another request's or an edited answer, the
API key is in no file, and a variant that failed everywhere has no score.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

import pytest

from crucible_dagster.backends.base import Request, Response
from crucible_dagster.backends.openai_compatible import digest
from crucible_dagster.backends.registry import BackendError, build_backend, check_backend
from crucible_dagster.contrib.llm_server import Raw, completion_body, llm_server, redirect
from crucible_dagster.experiment.ir import BackendRef
from tests.hostile.conftest import Cli, snapshot
from tests.http_probes import TalliedRaw, recorded_waits

pytestmark = pytest.mark.timeout(30)  # a regression here is a hang: fail it, never wait it out

KEY = "sk-hostile-7f3a9c1e5b"


def backend(url: str, cache_dir: Path | None = None, **options: Any) -> Any:
    settings: dict[str, Any] = {"model": "m", "max_retries": 0, "concurrency": 4, **options}
    settings.update({"cache": False} if cache_dir is None else {"cache_dir": str(cache_dir)})
    ref = BackendRef.model_validate(
        {"id": "openai_compatible", "endpoint_url": url, "options": settings}
    )
    return build_backend(ref)


def by_prompt(answers: dict[str, Raw]) -> Any:
    """A server script: the scripted response for a prompt in ``answers``, else the usual one."""
    return lambda n, body: answers.get(str(body["messages"][-1]["content"]))


def ask(client: Any, prompts: list[str]) -> dict[str, Response]:
    return {r.sample_id: r for r in client.predict([Request(p, p) for p in prompts])}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- redirects, deadlines, caps --------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_never_followed_and_the_key_never_leaves(
    status: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with llm_server() as (url, server), llm_server() as (elsewhere, other):
        server.script = lambda n, body: redirect(f"{elsewhere}/chat/completions", status)
        answers = ask(backend(url, max_retries=2), ["1+1", "2+2"])
        assert other.seen == []  # the other origin was never asked, with or without the key
        assert server.seen[0][2]["Authorization"] == f"Bearer {KEY}"  # it was sent, to url only
        assert len(server.seen) == 2  # not retried either
    for answer in answers.values():
        assert answer.output is None
        assert answer.error == (
            f"HTTP {status} from {url}/chat/completions: redirects are not followed"
        )


@pytest.mark.slow
@pytest.mark.parametrize("drip_head", [False, True], ids=["body", "head"])
def test_a_drip_ends_at_the_deadline_and_the_others_keep_their_answers(drip_head: bool) -> None:
    """1 byte every 50 ms of a 60-byte answer takes 3 s; each read is far under the timeout."""
    slow = TalliedRaw(body=completion_body("late"), drip_s=0.05, drip_head=drip_head)
    dripped = len(slow.body) + (len(slow.head()) if drip_head else 0)
    with llm_server() as (url, server):
        server.script = by_prompt({"slow": slow})
        answers = ask(backend(url, timeout_s=0.4), ["slow", "1+1", "2+2"])
        assert slow.sent < dripped, "the client waited for the whole drip"  # it hung up midway
    assert answers["slow"].error == (
        f"TimeoutError for {url}/chat/completions: no complete answer within 0.4 s"
    )
    assert (answers["1+1"].output, answers["2+2"].output) == ("2", "4")


@pytest.mark.slow  # waits out a 1 s deadline
def test_each_read_waits_only_for_what_is_left_of_the_deadline() -> None:
    """A byte every 0.9 s with timeout_s 1: the read begun at 0.9 s must give up at 1 s, not
    wait up to a whole timeout_s more, for the byte due at 1.8 s."""
    slow = TalliedRaw(body=completion_body("late"), drip_s=0.9)
    with llm_server() as (url, server):
        server.script = by_prompt({"slow": slow})
        answer = ask(backend(url, timeout_s=1.0), ["slow"])["slow"]
        sent = slow.sent  # the bytes due at 0 s and 0.9 s; the next one is due at 1.8 s
    assert answer.error is not None and answer.error.startswith("TimeoutError for ")
    assert sent == 2, "the client waited for the byte due after its deadline"


def test_a_body_over_the_cap_is_that_samples_error() -> None:
    big = completion_body("x" * 5000)
    with llm_server() as (url, server):
        server.script = by_prompt(
            {
                "declared": Raw(body=big),  # Content-Length says too much
                "undeclared": Raw(body=big, length=False),  # read until the cap is passed
            }
        )
        answers = ask(backend(url, max_response_bytes=1000), ["declared", "undeclared", "1+1"])
        server.script = by_prompt({"claims": Raw(body=big, claimed_length=17 * 1024 * 1024)})
        default = ask(backend(url), ["claims"])["claims"]
    for name in ("declared", "undeclared"):
        assert answers[name].error == (
            f"HTTP 200 from {url}/chat/completions: the body is over max_response_bytes "
            "(1000 bytes)"
        )
    assert answers["1+1"].output == "2"
    assert default.error == (
        f"HTTP 200 from {url}/chat/completions: the body is over max_response_bytes "
        f"({16 * 1024 * 1024} bytes)"
    )  # its body is 5 KB: only its header (17 MiB claimed) was over the cap


def test_retry_after_is_capped_by_max_backoff_s(monkeypatch: pytest.MonkeyPatch) -> None:
    far = {"Retry-After": "Wed, 21 Oct 2099 07:28:00 GMT"}
    with llm_server() as (url, server):
        server.script = lambda n, body: Raw(503, b"{}", headers=far) if n == 1 else None
        client = backend(url, max_retries=2, max_backoff_s=0.1, concurrency=1)
        waits = recorded_waits(client, monkeypatch)
        first = ask(client, ["1+1"])["1+1"]
        server.fail_next(1, status=429, retry_after=3600)
        second = ask(client, ["2+2"])["2+2"]
    assert (first.output, first.extra_requests, second.output, second.extra_requests) == (
        "2",
        1,
        "4",
        1,
    )
    assert waits == [0.1, 0.1]  # two waits of max_backoff_s, not 80 years or an hour


def test_connection_refused_is_that_samples_error() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    (answer,) = backend(url).predict([Request("a", "1+1")])
    assert answer.output is None and answer.error is not None
    assert answer.error.startswith(f"ConnectionRefusedError for {url}/chat/completions: ")


@pytest.mark.parametrize(
    "url", ["ftp://127.0.0.1/v1", "http://[::1/v1", "http://127.0.0.1:99999/v1", "127.0.0.1/v1"]
)
def test_an_endpoint_that_is_not_an_http_url_is_refused_before_any_request(url: str) -> None:
    with pytest.raises(ValueError) as raised:
        backend(url)
    assert str(raised.value).startswith(
        f"backend.endpoint_url: expected an http:// or https:// URL, found '{url}'"
    )


PASSWORD = "pw-9d1e2f"

#: (case, endpoint_url, the one line's phrase): refused by validate, the loader and the run
BAD_ENDPOINTS = [
    ("password", f"http://me:{PASSWORD}@127.0.0.1:9/v1", "a user name or password in the URL"),
    ("password_unparsable", f"http://me:{PASSWORD}@[::1/v1", "found 'http://***@[::1/v1'"),
    ("file", "file:///etc/passwd", "expected an http:// or https:// URL, found 'file:///etc"),
    ("javascript", "javascript:alert(1)", "found 'javascript:alert(1)'"),
    ("ftp", "ftp://127.0.0.1/", "found 'ftp://127.0.0.1/'"),
    ("bracket", "http://[::1", "found 'http://[::1' (Invalid IPv6 URL)"),
]


@pytest.mark.integration  # the Dagster loader is one of the three that refuse it
@pytest.mark.parametrize(
    ("case", "url", "phrase"), BAD_ENDPOINTS, ids=[c[0] for c in BAD_ENDPOINTS]
)
def test_a_bad_endpoint_url_is_refused_at_its_line_by_validate_the_loader_and_the_run(
    cli: Cli,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    case: str,
    url: str,
    phrase: str,
) -> None:
    """Before: validate said valid and the run made a run directory, then failed at predict
    (or, for a password, ran and copied it into manifest.json and Dagster's stored outputs)."""
    from tests.hostile.test_settings_parity import _refused_everywhere

    monkeypatch.chdir(tmp_path)
    text = (
        "id: parity\npipeline:\n  - name: predict\n"
        f"backend: {{id: openai_compatible, endpoint_url: '{url}', options: {{model: m}}}}\n"
    )
    field = "backend.endpoint_url"
    _refused_everywhere(cli, tmp_path, case, text, 4, field, phrase)  # nothing written
    for command in ("validate", "run"):
        assert PASSWORD not in cli(command, f"experiments/{case}.yaml").text  # shown as ***


def test_a_password_in_a_variants_base_url_is_refused_and_never_shown() -> None:
    ref = BackendRef.model_validate(
        {
            "id": "openai_compatible",
            "options": {"model": "m", "base_url": f"https://me:{PASSWORD}@example.org/v1"},
        }
    )
    with pytest.raises(BackendError) as raised:
        check_backend(ref, "good")
    assert str(raised.value).startswith("good.options.base_url: a user name or password")
    assert "https://me:***@example.org/v1" in str(raised.value)
    assert PASSWORD not in str(raised.value)


# --- malformed answers -----------------------------------------------------------------------

MALFORMED: dict[str, tuple[Raw, str]] = {
    "html": (
        Raw(body=b"<html>hi</html>", content_type="text/html"),
        "content type 'text/html', expected application/json",
    ),
    "no type": (Raw(body=completion_body("x"), content_type=None), "content type 'none'"),
    "not json": (Raw(body=b'{"choices": [}'), "the body is not JSON (line 1 column 14: "),
    "latin-1": (Raw(body='{"choices": "caf\xe9"}'.encode("latin-1")), "the body is not UTF-8"),
    "nested": (Raw(body=b"[" * 200_000), "the body's JSON is nested too deeply"),
    "no choices": (Raw(body=b'{"choices": []}'), "the answer has no choices[0].message.content"),
    "a list": (Raw(body=b"[1, 2]"), "the answer has no choices[0].message.content"),
    "number": (
        Raw(body=completion_body(5)),
        "choices[0].message.content: expected text, found int",
    ),
    "usage list": (
        Raw(body=completion_body("x", usage=[1, 2])),
        "usage: expected an object, found list",
    ),
    "usage text": (
        Raw(body=completion_body("x", usage={"prompt_tokens": "many\x1b[31m"})),
        "usage.prompt_tokens: expected a whole number >= 0, found 'many\\x1b[31m'",
    ),
    "usage bool": (
        Raw(body=completion_body("x", usage={"completion_tokens": True})),
        "usage.completion_tokens: expected a whole number >= 0, found True",
    ),
}


def test_each_malformed_answer_is_that_samples_error_and_the_fallback_takes_only_those(
    tmp_path: Path,
) -> None:
    with llm_server() as (url, server):
        server.script = lambda n, body: (
            MALFORMED[prompt][0]
            if body["model"] == "m" and (prompt := body["messages"][-1]["content"]) in MALFORMED
            else None
        )
        ref = BackendRef.model_validate(
            {
                "id": "openai_compatible",
                "endpoint_url": url,
                "options": {"model": "m", "max_retries": 0, "cache_dir": str(tmp_path)},
                "fallback": {
                    "id": "openai_compatible",
                    "endpoint_url": url,
                    "options": {"model": "backup", "cache": False},
                },
            }
        )
        primary = backend(url, tmp_path)
        answers = ask(primary, [*MALFORMED, "1+1", "2+2"])
        with_fallback = ask(build_backend(ref), [*MALFORMED, "1+1", "2+2"])
        asked_backup = sorted(
            b["messages"][-1]["content"] for b in server.bodies if b["model"] == "backup"
        )
    for prompt, (_, what) in MALFORMED.items():
        error = answers[prompt].error or ""
        assert error.startswith(f"HTTP 200 from {url}/chat/completions: {what}"), (prompt, error)
        assert answers[prompt].output is None
        assert with_fallback[prompt].output == f"echo: {prompt}"  # the fallback answered it
    assert (answers["1+1"].output, answers["2+2"].output) == ("2", "4")
    assert asked_backup == sorted(MALFORMED)  # only the failed samples went to the fallback
    cached = [json.loads(p.read_text()) for p in tmp_path.glob("responses/*/*.json")]
    assert sorted(r["request"]["messages"][-1]["content"] for r in cached) == ["1+1", "2+2"]


SURROGATE = Raw(body=b'{"choices": [{"message": {"content": "a\\ud800b"}}]}')  # valid JSON


def test_a_lone_surrogate_in_the_content_is_that_samples_error_and_never_cached(
    tmp_path: Path,
) -> None:
    """Valid JSON whose text no file can store (UTF-8 refuses a lone surrogate): before, it was
    cached, then failed the whole stage when the predictions were written, on every re-run."""
    with llm_server() as (url, server):
        server.script = by_prompt({"bad": SURROGATE})
        client = backend(url, tmp_path)
        first = ask(client, ["bad", "1+1"])
        again = ask(client, ["bad", "1+1"])
        asked = server.requests["m"]
    for answers in (first, again):
        assert answers["bad"].output is None
        assert answers["bad"].error == (
            f"HTTP 200 from {url}/chat/completions: choices[0].message.content: not valid "
            "Unicode (a lone surrogate at character 1)"
        )
        assert answers["1+1"].output == "2"
    assert asked == 3  # 'bad' asked again: its answer was not cached; '1+1' was
    (entry,) = cache_files(tmp_path)
    assert json.loads(entry.read_text())["request"]["messages"][-1]["content"] == "1+1"


def test_a_cached_answer_with_a_lone_surrogate_is_a_miss(tmp_path: Path) -> None:
    """An entry an older version stored (its digest right) is asked again, not served."""
    with llm_server() as (url, server):
        client = backend(url, tmp_path)
        ask(client, ["2+3"])
        (entry,) = cache_files(tmp_path)
        record = json.loads(entry.read_text())
        record["response"] = json.loads(SURROGATE.body)
        record["response_sha256"] = digest(record["response"])
        entry.write_text(json.dumps(record))
        answer = ask(client, ["2+3"])["2+3"]
        assert (answer.output, answer.cached, server.requests["m"]) == ("5", False, 2)


def test_a_run_keeps_the_other_samples_when_one_answer_has_a_lone_surrogate(
    cli: Cli, tmp_path: Path, artifacts_dir: Path
) -> None:
    with llm_server() as (url, server):
        server.script = by_prompt({"is 2 a lucky number?": SURROGATE})
        path = experiment(tmp_path, url, tmp_path / "cache", "{allow_failed_variants: true}")
        said = cli("run", path, "--json")
    assert said.code == 0, said.text
    assert "Traceback" not in said.text
    good = json.loads(said.out)["score"]["variants"]["good"]
    assert (good["n"], good["failed"]) == (4, 1)  # three answers kept, one error
    assert manifest(artifacts_dir)["status"] == "completed"


# --- the cache -------------------------------------------------------------------------------


def cache_files(root: Path) -> list[Path]:
    return sorted(root.glob("responses/*/*.json"))


def test_an_edited_cache_entry_is_a_miss_and_is_rewritten(tmp_path: Path) -> None:
    with llm_server() as (url, server):
        client = backend(url, tmp_path)
        assert ask(client, ["2+3"])["2+3"].output == "5"
        (entry,) = cache_files(tmp_path)
        entry.write_text(entry.read_text().replace('"content": "5"', '"content": "6"'))
        again = ask(client, ["2+3"])["2+3"]
        assert (again.output, again.cached, server.requests["m"]) == ("5", False, 2)
        assert '"content": "5"' in entry.read_text()  # written afresh
        third = ask(client, ["2+3"])["2+3"]
        assert (third.output, third.cached, server.requests["m"]) == ("5", True, 2)


def test_another_requests_entry_is_not_served_for_this_one(tmp_path: Path) -> None:
    with llm_server() as (url, server):
        client = backend(url, tmp_path)
        ask(client, ["2+3"])
        (entry,) = cache_files(tmp_path)
        key = client.cache_key(client.body("4+4"))
        planted = tmp_path / "responses" / key[:2] / f"{key}.json"
        planted.parent.mkdir(parents=True, exist_ok=True)
        planted.write_text(entry.read_text())  # a whole, valid entry: of 2+3, not of 4+4
        answer = ask(client, ["4+4"])["4+4"]
        assert (answer.output, answer.cached, server.requests["m"]) == ("8", False, 2)
        assert json.loads(planted.read_text())["request"]["messages"][-1]["content"] == "4+4"


@pytest.mark.parametrize(
    "content",
    [b"", b'{"key": "trunc', b"\xff\xfe\x00garbage", b"[]", b'{"key": 1, "response": null}'],
    ids=["empty", "truncated", "not-utf8", "a-list", "wrong-types"],
)
def test_an_unreadable_cache_entry_is_a_miss_and_is_rewritten(
    content: bytes, tmp_path: Path
) -> None:
    with llm_server() as (url, server):
        client = backend(url, tmp_path)
        ask(client, ["2+3"])
        (entry,) = cache_files(tmp_path)
        entry.write_bytes(content)
        before = {p for p in snapshot(tmp_path)}
        answer = ask(client, ["2+3"])["2+3"]
        assert (answer.output, answer.error, server.requests["m"]) == ("5", None, 2)
        assert set(snapshot(tmp_path)) == before  # the same file, nothing else written
        assert json.loads(entry.read_text())["response"]["choices"][0]["message"]["content"] == "5"


@pytest.mark.parametrize("kind", ["folder", "fifo", "symlink"])
def test_not_a_regular_file_where_a_cache_entry_belongs(kind: str, tmp_path: Path) -> None:
    """A folder loses no answer (it cannot be replaced: every run asks again); a FIFO is never
    opened (no hang) and is replaced; a symlink is replaced, its target outside left as it was."""
    cache, outside = tmp_path / "cache", tmp_path / "outside.json"
    outside.write_text('{"not": "a cache entry"}')
    with llm_server() as (url, server):
        client = backend(url, cache)
        key = client.cache_key(client.body("2+3"))
        entry = cache / "responses" / key[:2] / f"{key}.json"
        entry.parent.mkdir(parents=True)
        {
            "folder": entry.mkdir,
            "fifo": lambda: os.mkfifo(entry),
            "symlink": lambda: entry.symlink_to(outside),
        }[kind]()
        first, second = ask(client, ["2+3"])["2+3"], ask(client, ["2+3"])["2+3"]
    assert (first.output, first.error, second.output) == ("5", None, "5")
    assert server.requests["m"] == (2 if kind == "folder" else 1)  # else the second was cached
    assert outside.read_text() == '{"not": "a cache entry"}'
    assert entry.is_dir() if kind == "folder" else (entry.is_file() and not entry.is_symlink())


@pytest.mark.parametrize("folder", ["shard", "responses"])
def test_a_cache_folder_replaced_by_a_symlink_is_never_written_through(
    folder: str, tmp_path: Path
) -> None:
    """Before: the fresh entry landed in the link's target, outside cache_dir. Now the entry is
    a miss, the link (only the link) is replaced by a folder, and the target is untouched."""
    cache, outside = tmp_path / "cache", tmp_path / "outside"
    outside.mkdir()
    (outside / "theirs.txt").write_text("untouched")
    with llm_server() as (url, server):
        client = backend(url, cache)
        key = client.cache_key(client.body("2+3"))
        shard = cache / "responses" / key[:2]
        link = shard if folder == "shard" else cache / "responses"
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(outside, target_is_directory=True)
        if folder == "shard":  # a planted, valid-looking entry behind the link is not served
            ask(backend(url, tmp_path / "other"), ["2+3"])
            (planted,) = cache_files(tmp_path / "other")
            (outside / planted.name).write_text(planted.read_text())
        before = snapshot(outside)
        first, second = ask(client, ["2+3"])["2+3"], ask(client, ["2+3"])["2+3"]
        asked = server.requests["m"]
    assert (first.output, first.cached, second.output, second.cached) == ("5", False, "5", True)
    assert asked == (2 if folder == "shard" else 1)  # the planted entry was not served
    assert snapshot(outside) == before
    assert not link.is_symlink() and link.is_dir()
    assert (shard / f"{key}.json").is_file()


# --- options ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("max_response_bytes", True, "expected a number, found a boolean"),
        ("max_response_bytes", 0, "greater than or equal to 1"),
        ("max_backoff_s", -1, "greater than or equal to 0"),
        ("max_backoff_s", False, "expected a number, found a boolean"),
        ("timeout_s", True, "expected a number, found a boolean"),
        ("max_retries", True, "expected a number, found a boolean"),
    ],
)
def test_new_and_numeric_options_refuse_booleans_and_out_of_range(
    field: str, value: object, message: str
) -> None:
    ref = BackendRef.model_validate(
        {"id": "openai_compatible", "options": {"model": "m", field: value}}
    )
    with pytest.raises(BackendError) as raised:
        check_backend(ref)
    assert str(raised.value).startswith(f"backend.options.{field}: ")
    assert message in str(raised.value) and f"(found {value!r})" in str(raised.value)


# --- whole runs ------------------------------------------------------------------------------


def experiment(folder: Path, url: str, cache: Path, score: str = "{}") -> Path:
    """Two variants on the same questions: ``good`` at ``url``, ``broken`` at a closed port."""
    path = folder / "exp.yaml"
    closed = f"http://127.0.0.1:{free_port()}/v1"
    options = f"{{model: m, max_retries: 0, cache_dir: '{cache}'}}"
    path.write_text(
        "id: http_hostile\n"
        "pipeline:\n"
        "  - {name: seed, module: 'tests.helpers:SeedQuestions', options: {count: 4}}\n"
        "  - name: predict\n"
        "    options:\n"
        "      inputs: examples\n"
        "      reference: output\n"
        "      variants:\n"
        f"        good: {{id: openai_compatible, endpoint_url: '{url}', options: {options}}}\n"
        f"        broken: {{id: openai_compatible, endpoint_url: '{closed}', "
        f"options: {options}}}\n"
        f"  - {{name: score, options: {score}}}\n"
    )
    return path


def manifest(artifacts: Path) -> dict[str, Any]:
    (path,) = artifacts.rglob("manifest.json")
    return dict(json.loads(path.read_text()))


def no_key_in(root: Path, key: str) -> None:
    for name, data in snapshot(root).items():
        assert key.strip().encode() not in data, name


def test_a_variant_that_failed_everywhere_fails_the_run_with_its_reason(
    cli: Cli, tmp_path: Path, artifacts_dir: Path
) -> None:
    with llm_server() as (url, _server):
        path = experiment(tmp_path, url, tmp_path / "cache")
        said = cli("run", path)
    assert said.code == 1
    lines = [line for line in said.err.splitlines() if line.startswith("failed at stage")]
    assert len(lines) == 1, said.text
    assert lines[0].startswith(
        "failed at stage 'score' (StageError, reason variant_failed): variant 'broken': "
    )
    assert "every one of its 4 samples failed (the first: ConnectionRefusedError for " in lines[0]
    assert manifest(artifacts_dir)["status"] == "failed"


def test_a_variant_that_failed_everywhere_has_an_undefined_score_when_allowed(
    cli: Cli, tmp_path: Path, artifacts_dir: Path
) -> None:
    with llm_server() as (url, _server):
        path = experiment(tmp_path, url, tmp_path / "cache", "{allow_failed_variants: true}")
        said = cli("run", path, "--json")
    assert said.code == 0, said.text
    variants = json.loads(said.out)["score"]["variants"]
    assert variants["good"]["n"] == 4 and variants["good"]["failed"] == 0
    broken = variants["broken"]
    assert (broken["mean"], broken["n"], broken["failed"]) == (None, 0, 4)
    assert broken["undefined"].startswith(
        "every one of its 4 samples failed (the first: ConnectionRefusedError for http://127.0.0.1:"
    )
    assert manifest(artifacts_dir)["status"] == "completed"


@pytest.mark.parametrize("key", [KEY, KEY + "\n"], ids=["key", "key-with-newline"])
def test_the_api_key_is_in_no_file_written(
    key: str, cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Failures and answers alike are recorded (run directory, cache), never the key; a key
    http.client refuses (a newline) is not quoted in the error either."""
    monkeypatch.setenv("OPENAI_API_KEY", key)
    with llm_server() as (url, server):
        server.script = lambda n, body: Raw(body=b"{bad") if n % 2 else None
        path = experiment(tmp_path, url, tmp_path / "cache", "{allow_failed_variants: true}")
        before = snapshot(tmp_path)
        said = cli("run", path)
    assert said.code == 0, said.text
    assert key.strip() not in said.text
    if key == KEY:  # the key was used: every request carried it
        assert server.seen and all(h["Authorization"] == f"Bearer {KEY}" for _, _, h in server.seen)
    after = snapshot(tmp_path)
    assert {k: v for k, v in after.items() if k in before} == before
    assert all(k.startswith(("artifacts/", "cache/")) for k in set(after) - set(before))
    no_key_in(tmp_path, key)
