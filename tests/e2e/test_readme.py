"""The README's walkthrough, run literally: its shell blocks, in order, in one bash, against a fresh
`make run`; every step must succeed (curl --fail-with-body turns an HTTP error into a failure) and every
documented answer (a ``#  {…}`` line) must match what that step printed."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support.runtime import PROJECT, LocalRuntime

pytestmark = pytest.mark.e2e
README = PROJECT / "README.md"
_STEP = re.compile(r"^# (\d+)\. ", re.MULTILINE)
_PAIR = re.compile(r'"(\w+)":\s*("(?:[^"\\…]|\\.)*"|-?\d+(?:\.\d+)?|true|false|null)(?=\s*[,}\]])')


def walkthrough() -> str:
    text = README.read_text()
    section = text[text.index("## Five-minute walkthrough") : text.index("## Contacts, tags, groups and events")]
    return "\n".join(re.findall(r"```sh\n(.*?)```", section, re.DOTALL))


def documented_answers(script: str) -> dict[int, list[tuple[str, Any]]]:
    """Step number → the (key, value) pairs its ``#  {…}`` lines promise (values shown as … are skipped)."""
    answers: dict[int, list[tuple[str, Any]]] = {}
    step = 0
    for line in script.splitlines():
        if match := _STEP.match(line):
            step = int(match.group(1))
        elif line.startswith("#  {"):
            answers.setdefault(step, []).extend((k, json.loads(v)) for k, v in _PAIR.findall(line))
    return answers


def printed_pairs(output: str) -> set[tuple[str, str]]:
    """Every (key, scalar value) in every JSON document the step printed (curl prints them back to back)."""
    decoder, found, index = json.JSONDecoder(), set(), 0
    while (start := min((i for i in (output.find("{", index), output.find("[", index)) if i >= 0), default=-1)) >= 0:
        try:
            document, index = decoder.raw_decode(output, start)
        except json.JSONDecodeError:
            index = start + 1
            continue
        stack = [document]
        while stack:
            value = stack.pop()
            if isinstance(value, dict):
                for key, item in value.items():
                    stack.append(item)
                    if not isinstance(item, dict | list):
                        found.add((key, json.dumps(item)))
            elif isinstance(value, list):
                stack.extend(value)
    return found


def test_the_walkthrough_runs_as_written_and_answers_as_documented(tmp_path: Path):
    script = walkthrough()
    assert "curl -d" not in script and " -d '" not in script  # form-encoded bodies are answered 415
    steps = sorted({int(n) for n in _STEP.findall(script)})
    assert steps == list(range(1, steps[-1] + 1)) and steps[-1] >= 21
    marked = _STEP.sub(lambda m: f'echo "@@step {m.group(1)}"\n{m.group(0)}', script)
    runtime = LocalRuntime()
    try:
        run = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", marked],
            cwd=tmp_path,
            env={"PATH": "/usr/local/bin:/usr/bin:/bin", "PORT": str(runtime.api_port),
                 "MOTO_PORT": str(runtime.moto_port), "HOME": str(tmp_path)},
            capture_output=True,
            text=True,
            timeout=300,
        )  # fmt: skip
    finally:
        runtime.stop()
    printed = {int(n): text for n, text in re.findall(r"@@step (\d+)\n(.*?)(?=@@step |\Z)", run.stdout, re.DOTALL)}
    assert run.returncode == 0, f"stopped after step {max(printed, default=0)}:\n{run.stderr[-3000:]}"
    assert sorted(printed) == steps
    for step, pairs in documented_answers(script).items():
        seen = printed_pairs(printed[step])
        missing = [(k, v) for k, v in pairs if (k, json.dumps(v)) not in seen]
        assert not missing, f"step {step} does not answer {missing}:\n{printed[step][:2000]}"
