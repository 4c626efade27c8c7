"""The documentation works: every code block in README.md and docs/*.md runs as written on a
fresh, offline clone. A newcomer pastes these blocks, so they are a specification.

- ```python blocks run with this environment's Python; ```bash, ```sh and unlabelled blocks run as
  bash scripts with `set -e` (the first failing command fails the block); in ```console blocks
  the lines that start with a `$ ` prompt run, the rest is their output. Blocks in any other
  language (text, toml, json, yaml, ...) show content and are not run.
- A block with `<!-- docs-test: skip REASON -->`, alone on one of the two lines before its
  opening fence, is reported as skipped with that reason: it needs the network, a Hub token,
  Docker, the full CIFAR-10 archive, a running app, or minutes of CPU.
- Each block runs in a fresh directory that looks like a clone (a symlink to every top-level entry
  of the repository except runs/, .git and .venv), with this environment's bin/ first on PATH, the
  repository on PYTHONPATH, the Hugging Face Hub offline, and 120 s to finish.
- A newcomer's command never destroys shipped work: no block may change, add or remove a file in
  models/, data/ or examples/.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from cifar_cnn.data.cifar10 import REPO_ROOT

DOCS = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
#: "README a newcomer finishes" (issue #18): the details live in docs/.
README_MAX_LINES = 150
SHIPPED = ("models", "data", "examples")
NOT_IN_THE_CLONE = {"runs", ".git", ".venv"}
TIMEOUT_SECONDS = 120

SHELL_LANGUAGES = {"", "bash", "sh", "shell", "console"}
RUN_LANGUAGES = SHELL_LANGUAGES | {"python"}
FENCE = re.compile(r"^(?P<indent>\s*)```(?P<language>[\w+-]*)\s*$")
SKIP = re.compile(r"<!--\s*docs-test:\s*skip\s+(?P<reason>.+?)\s*-->")
LINK = re.compile(r"(?<!!)\[[^\]]*\]\((?P<target>[^)\s]+)\)")


@dataclass(frozen=True)
class CodeBlock:
    path: Path
    line: int  # of the opening fence, 1-based
    language: str
    code: str
    skip_reason: str | None

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(REPO_ROOT)}:{self.line}"


def code_blocks(path: Path) -> list[CodeBlock]:
    """Every fenced block of a markdown file, with its language and skip marker."""
    lines = path.read_text().splitlines()
    blocks, i = [], 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        indent = len(opening["indent"])
        end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == "```"), None)
        if end is None:
            raise ValueError(f"{path.name}:{i + 1}: the code block is never closed")
        body = [line[indent:] if line[:indent].isspace() else line for line in lines[i + 1 : end]]
        markers = [SKIP.fullmatch(line.strip()) for line in lines[max(0, i - 2) : i]]
        reasons = [m["reason"] for m in markers if m]
        blocks.append(
            CodeBlock(
                path=path,
                line=i + 1,
                language=opening["language"].lower(),
                code="\n".join(body) + "\n",
                skip_reason=reasons[-1] if reasons else None,
            )
        )
        i = end + 1
    return blocks


def runnable_blocks() -> list:
    params = []
    for path in DOCS:
        for block in code_blocks(path):
            if block.language not in RUN_LANGUAGES:
                continue
            skip = pytest.mark.skip(reason=f"{block.id}: {block.skip_reason}")
            marks = [skip] if block.skip_reason else []
            params.append(pytest.param(block, id=block.id, marks=marks))
    return params


def script_for(block: CodeBlock) -> tuple[str, str, list[str]]:
    """The file name, content and command line that run `block`."""
    if block.language == "python":
        return "block.py", block.code, [sys.executable, "block.py"]
    code = block.code
    if block.language == "console":
        code = "".join(line[2:] + "\n" for line in code.splitlines() if line.startswith("$ "))
    return "block.sh", code, ["bash", "-e", "-o", "pipefail", "block.sh"]


def fresh_clone(directory: Path) -> Path:
    """A directory that looks like a fresh clone of the repository, without its runs."""
    directory.mkdir()
    for entry in REPO_ROOT.iterdir():
        if entry.name not in NOT_IN_THE_CLONE:
            (directory / entry.name).symlink_to(entry, target_is_directory=entry.is_dir())
    return directory


def environment() -> dict[str, str]:
    bin_dir = str(Path(sys.executable).parent)
    return {
        **os.environ,
        "PATH": os.pathsep.join([bin_dir, os.environ.get("PATH", "")]),
        "PYTHONPATH": str(REPO_ROOT),
        "HF_HUB_OFFLINE": "1",  # fail at once, rather than wait for a network that is not there
    }


def run(command: list[str], cwd: Path) -> tuple[int, str]:
    """Run `command` with the time limit; its exit status and combined output. On timeout the
    whole process group goes, children included."""
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env=environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        return -1, f"{output}\n(killed after {TIMEOUT_SECONDS} s)"
    return process.returncode, output


def shipped_files() -> dict[str, str]:
    """Every file under the shipped folders, by path, with the SHA-256 of its content."""
    return {
        str(path.relative_to(REPO_ROOT)): hashlib.sha256(path.read_bytes()).hexdigest()
        for folder in SHIPPED
        for path in sorted((REPO_ROOT / folder).rglob("*"))
        if path.is_file()
    }


@pytest.mark.slow
@pytest.mark.parametrize("block", runnable_blocks())
def test_code_block_runs_on_a_fresh_clone(block: CodeBlock, tmp_path):
    clone = fresh_clone(tmp_path / "clone")
    name, script, command = script_for(block)
    (clone / name).write_text(script)
    before = shipped_files()

    status, output = run(command, clone)

    assert status == 0, f"{block.id} failed (exit {status}):\n{block.code}\n{output[-4000:]}"
    after = shipped_files()
    changed = sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))
    assert not changed, f"{block.id} changed shipped files: {', '.join(changed)}"


def test_readme_is_short_enough_to_finish():
    lines = (REPO_ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, "move the details into docs/"


def test_every_skip_marker_belongs_to_a_block_and_gives_a_reason():
    for path in DOCS:
        marked = {b.line for b in code_blocks(path) if b.skip_reason}
        lines = path.read_text().splitlines()
        for number, line in enumerate(lines, start=1):
            if line.strip().startswith("<!--") and "docs-test:" in line:
                assert SKIP.fullmatch(line.strip()), f"{path.name}:{number}: write skip REASON"
                following = range(number + 1, number + 3)
                assert marked & set(following), f"{path.name}:{number}: no code block follows"


def test_links_between_the_docs_resolve():
    for path in DOCS:
        for match in LINK.finditer(path.read_text()):
            target, _, anchor = match["target"].partition("#")
            if "://" in target or target.startswith("mailto:"):
                continue
            linked = path.parent / target if target else path
            assert linked.exists(), f"{path.name}: broken link {target}"
            if anchor and linked.suffix == ".md":
                assert anchor in heading_anchors(linked), f"{path.name}: no heading #{anchor}"


def heading_anchors(path: Path) -> set[str]:
    """The anchors GitHub gives a markdown file's headings (outside code blocks): lower case,
    link targets and punctuation dropped, spaces as hyphens, `-1`, `-2`, ... on repeats."""
    anchors: set[str] = set()
    fenced = False
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            fenced = not fenced
        heading = re.match(r"#{1,6} (.+?)(?: #+)?$", line)
        if fenced or not heading:
            continue
        text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading[1].strip().lower())
        anchor = re.sub(r"[^\w\- ]", "", text).replace(" ", "-")
        repeat = 0
        while (candidate := anchor + (f"-{repeat}" if repeat else "")) in anchors:
            repeat += 1
        anchors.add(candidate)
    return anchors


def generated_tables(path: Path) -> dict[str, str]:
    """The `<!-- NAME:start -->` ... `<!-- NAME:end -->` blocks of a page, by NAME."""
    found = re.findall(r"<!-- (\w+):start -->\n(.*?)\n<!-- \1:end -->", path.read_text(), re.S)
    return dict(found)


def test_the_generated_tables_say_what_the_shipped_folders_say():
    """scripts/results_table.py wrote README's and docs/trust.md's tables from the model folders'
    metrics.json and config.json: after a model changes, the script must be run again. Only the
    milliseconds per image, measured on the machine that ran it, may differ."""
    spec = importlib.util.spec_from_file_location(
        "results_table", REPO_ROOT / "scripts" / "results_table.py"
    )
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)

    def without_timings(table: str) -> list[str]:
        return [row.rsplit("|", 2)[0] for row in table.splitlines()]

    readme = generated_tables(REPO_ROOT / "README.md")
    assert without_timings(readme["results"]) == without_timings(script.table(timed=False))
    trust = generated_tables(REPO_ROOT / "docs" / "trust.md")
    assert trust["trust"] == script.trust_table("../models")
    assert trust["corruptions"] == script.corruption_table()
    assert trust["calibration"] == script.calibration_table()
