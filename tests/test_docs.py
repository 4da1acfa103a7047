"""The docs cannot drift from the code: README.md and docs/*.md are run.

- Every ```python block runs, each on its own: a fresh namespace, an empty
  temporary folder as the current one, and `DIGITNET_DATA` pointing at
  conftest.py's slice of the real MNIST with `data.N_TRAIN` shrunk to match
  (`small_split`), so `digitnet.load_mnist()` gives 1,000 training, 200
  validation and 500 test images and a 30-epoch chapter-1 run takes a
  fraction of a second.  There is no skip-list: a block that would take
  minutes even on that slice is written on a smaller slice, and text that is
  not meant to run goes in a ```text fence.  A failing block's traceback
  names the doc and its line.
- Every `digitnet ...` command shown, in ```sh blocks and inline, names a
  real subcommand, uses only flags its `--help` lists, gives a listed value
  to a flag with choices, and (unless elided with `...`) gives the required
  ones; flags listed in a `# [--flag]` comment after it count too.
- The README's test command is the one `.ci/run` runs, verbatim.
- Every relative link and picture points at a file that exists, and every
  `#anchor` at a heading of that file.

docs/development.md ("Docs that run") says the same for writers.
"""

import argparse
import re
import shlex
import sys
from pathlib import Path

import pytest

from digitnet import cli

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))
SHELL = {"sh", "bash", "shell", "console"}
FENCE = re.compile(r"^(\s*)```\s*([\w+-]*)\s*$")


def fences(path):
    """(language, first line number, text) of each fenced block; the
    outside text, with fenced lines blanked, as the last item's text."""
    blocks, prose, current = [], [], None
    for number, line in enumerate(path.read_text().splitlines(), 1):
        match = FENCE.match(line)
        if current is None and match:
            current = (match.group(2).lower(), number + 1, len(match.group(1)), [])
            prose.append("")
        elif current is not None and match and not match.group(2):
            language, start, indent, lines = current
            blocks.append((language, start, "\n".join(l[indent:] for l in lines)))
            current = None
            prose.append("")
        elif current is not None:
            current[3].append(line)
            prose.append("")
        else:
            prose.append(line)
    assert current is None, f"{path.name}: a ``` fence opened on line {current[1] - 1} never closes"
    return blocks, "\n".join(prose)


def name(path):
    return str(path.relative_to(ROOT))


PYTHON = [pytest.param(path, start, text, id=f"{name(path)}:{start}")
          for path in DOCS for language, start, text in fences(path)[0] if language == "python"]


def test_the_docs_have_python_blocks():
    """A parser that found nothing would pass every block test: count them."""
    assert len(PYTHON) >= 10
    assert {name(p.values[0]) for p in PYTHON} >= {"README.md", "docs/python.md"}


@pytest.mark.parametrize("path, start, text", PYTHON)
def test_python_block_runs(path, start, text, small_split, small_mnist_dir, tmp_path,
                           monkeypatch):
    monkeypatch.setenv("DIGITNET_DATA", str(small_mnist_dir))
    monkeypatch.setenv("DIGITNET_MIRRORS", "http://127.0.0.1:9/")  # never download
    monkeypatch.chdir(tmp_path)
    code = compile("\n" * (start - 1) + text, str(path), "exec")  # tracebacks name doc lines
    namespace = {"__name__": "__doc_block__"}
    try:
        exec(code, namespace)
    finally:
        if "matplotlib.pyplot" in sys.modules:  # a block's figures are its own
            sys.modules["matplotlib.pyplot"].close("all")


# ---- `digitnet ...` commands and their flags ----

def subparsers(parser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices
    return {}


def commands(path):
    """(line, words, whole) of each `digitnet` command shown in the doc: whole
    for a block's commands, which must run as shown; an inline one may just
    name a command (`digitnet plot curves` draws ...)."""
    blocks, prose = fences(path)
    found = []
    for language, start, text in blocks:
        if language not in SHELL:
            continue
        text = re.sub(r"\\\n", " ", text)  # continuation lines
        for offset, line in enumerate(text.splitlines()):
            found += [(start + offset, words, True) for words in split_line(line.lstrip("$ "))]
    for match in re.finditer(r"`((?:python -m )?digitnet\s[^`]+)`", prose):  # may wrap
        number = prose.count("\n", 0, match.start()) + 1
        span = " ".join(match.group(1).split())
        found += [(number, words, False) for words in split_line(span)]
    return found


def split_line(line):
    """The `digitnet` commands in one shell line, each a list of words, with
    the flags of a trailing `# [--flag ...]` comment appended."""
    code, _, comment = line.partition(" #")
    if code.lstrip().startswith("#"):
        return []
    words = shlex.split(code.replace("|", " ; ").replace("&&", " ; "), comments=True)
    words = [w.strip("[]") or w for w in words]  # `digitnet download [--dataset D]`
    out, current = [], []
    for word in words + [";"]:
        if word in (";", "||"):
            out.append(current)
            current = []
        else:
            current.append(word)
    found = []
    for words in out:
        while words and re.match(r"^[A-Z_]+=", words[0]):  # VAR=value digitnet ...
            words = words[1:]
        if words[:3] == ["python", "-m", "digitnet"]:
            words = ["digitnet"] + words[3:]
        if words[:1] != ["digitnet"]:
            continue
        for i, word in enumerate(words):
            if word.startswith(("<", ">")) or word in ("2>&1",):
                words = words[:i]  # a redirection ends the command's words
                break
        found.append(words + re.findall(r"\[(--[\w-]+)", comment))
    return found


def command_errors(words, whole=True):
    """What is wrong with one shown `digitnet` command, as strings."""
    parser = cli.build_parser()
    rest = words[1:]
    while rest and rest[0] in subparsers(parser):
        parser, rest = subparsers(parser)[rest[0]], rest[1:]
    if subparsers(parser) and rest and rest[0] not in ("-h", "--help") \
            and not (rest[0].isupper() or rest[0] == "..."):  # `digitnet COMMAND --help`
        return [f"`{' '.join(words)}`: no such command of `{parser.prog}`; "
                f"choose from {', '.join(subparsers(parser))}"]
    options = {s: a for a in parser._actions for s in a.option_strings}
    errors = []
    for i, word in enumerate(rest):
        if not re.match(r"^--?[A-Za-z]", word):
            continue
        flag = word.split("=")[0]
        action = options.get(flag)
        if action is None:
            errors.append(f"{flag}: not a flag of `{parser.prog}` (see its --help)")
            continue
        value = word.split("=", 1)[1] if "=" in word else (rest[i + 1] if i + 1 < len(rest)
                                                          else None)
        placeholder = value is None or value.startswith("-") or value.isupper() or "|" in value
        if action.choices and action.nargs is None and not placeholder \
                and value not in action.choices:
            errors.append(f"{flag} {value}: not one of {', '.join(map(str, action.choices))}")
    if whole and "..." not in words and not any(w in ("-h", "--help") for w in rest):
        given = {w.split("=")[0] for w in rest}
        errors += [f"{a.option_strings[0]} is required by `{parser.prog}`"
                   for a in parser._actions if a.required and a.option_strings
                   and not given & set(a.option_strings)]
    return errors


COMMANDS = [pytest.param(path, line, words, whole,
                         id=f"{name(path)}:{line}:{' '.join(words[:3])}")
            for path in DOCS for line, words, whole in commands(path)]


def test_the_docs_show_commands():
    assert len(COMMANDS) >= 40
    shown = {tuple(p.values[2][:2]) for p in COMMANDS}
    assert {("digitnet", c) for c in ("train", "predict", "serve", "plot", "info")} <= shown


@pytest.mark.parametrize("path, line, words, whole", COMMANDS)
def test_shown_command_uses_real_flags(path, line, words, whole):
    assert not command_errors(words, whole), f"{name(path)}:{line}: {' '.join(words)}"


def test_the_command_check_sees_drift():
    """The check itself, on commands the way a doc drifts."""
    ok = ["digitnet", "train", "--layers", "fc:30,softmax:10", "--eta-decay", "4", "--seed", "0"]
    assert command_errors(ok) == []
    assert command_errors(["digitnet", "train", "--eta_decay", "4"])  # renamed flag
    assert command_errors(["digitnet", "train", "--cost", "cross_entropy"])  # a wrong choice
    assert command_errors(["digitnet", "fit", "--epochs", "3"])  # no such command
    assert command_errors(["digitnet", "plot", "weights", "model.npz"])  # --out is required
    assert not command_errors(["digitnet", "plot", "curves", "a.json", "...", "--out", "c.png"])
    assert split_line("digitnet plot errors m.npz --out e.png   # [--count 40] [--dataset]") \
        == [["digitnet", "plot", "errors", "m.npz", "--out", "e.png", "--count", "--dataset"]]
    assert split_line("DIGITNET_DATA=d python -m digitnet info --json | head -3") \
        == [["digitnet", "info", "--json"]]
    assert split_line("digitnet download [--dataset all]") \
        == [["digitnet", "download", "--dataset", "all"]]


def test_readme_test_command_is_what_ci_runs():
    blocks, _ = fences(ROOT / "README.md")
    lines = [line for language, _, text in blocks if language in SHELL
             for line in text.splitlines() if "pip install" in line and "pytest" in line]
    assert lines, "the README shows no test command"
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    for line in lines:
        assert line in ci, f"the README's test command is not .ci/run's: {line}"


# ---- links ----

def slug(heading):
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path):
    _, prose = fences(path)
    return {slug(m) for m in re.findall(r"^#+\s+(.*)$", prose, re.M)}


LINKS = [pytest.param(path, target, id=f"{name(path)}->{target}")
         for path in DOCS
         for target in re.findall(r"\]\(([^)\s]+)\)", fences(path)[1])
         if not re.match(r"^[a-z]+:", target)]


@pytest.mark.parametrize("path, target", LINKS)
def test_link_points_at_something(path, target):
    file, _, anchor = target.partition("#")
    destination = (path.parent / file).resolve() if file else path
    assert destination.exists(), f"{name(path)}: {target}: no such file"
    if anchor and destination.suffix == ".md":
        assert anchor in anchors(destination), f"{name(path)}: {target}: no such heading"
