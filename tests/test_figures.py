"""A figure lives in one place: the README and docs/development.md quote
benchmarks/RESULTS.md's "At a glance" table (the mutation score, the suite's
time, the seeds of chapter 1 and of each recipe), and must quote it right."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
DEVELOPMENT = (ROOT / "docs" / "development.md").read_text()
RESULTS = (ROOT / "benchmarks" / "RESULTS.md").read_text()


def glance():
    """{what: figure} from RESULTS.md's "At a glance" table."""
    section = RESULTS.split("## At a glance", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|")[1:-1] for line in section.splitlines()
            if line.startswith("| ") and not line.startswith("| ---")]
    return {what.strip(): figure.strip() for what, figure, _ in rows[1:]}


def one(pattern, text, where):
    found = re.findall(pattern, text, flags=re.S)
    assert len(found) == 1, f"{where}: {len(found)} matches of {pattern!r}"
    return found[0]


def test_the_table_has_every_figure_the_readme_quotes():
    assert set(glance()) == {
        "mutation testing", "the test suite", "chapter 1, `[784, 30, 10]`, seeds 0-2",
        "dense recipe, seeds 0-2", "conv recipe, seeds 0-2", "speed recipe, seeds 0-2",
        "record recipe, seeds 0-2"}


def test_the_mutation_score_is_the_last_runs():
    caught, of = one(r"(\d+) of (\d+) caught", glance()["mutation testing"], "RESULTS.md")
    assert one(r"its last run caught\s+(\d+) of\s+(\d+)", README, "README") == (caught, of)
    assert one(r"every one must be caught \((\d+) of\s+(\d+)", DEVELOPMENT,
               "development.md") == (caught, of)


def test_the_suites_time_is_the_measured_one():
    low, high = one(r"(\d+)-(\d+) s on two cores", glance()["the test suite"], "RESULTS.md")
    assert one(r"The suite takes about (\d+)-(\d+)\s+seconds", README, "README") == (low, high)


def seeds(text):
    return re.findall(r"\d+\.\d+%", text)


@pytest.mark.parametrize("what, row", [
    ("chapter 1, `[784, 30, 10]`, seeds 0-2", r"\| chapter 1, `\[784, 30, 10\]` \|([^|]+)\|"),
    ("dense recipe, seeds 0-2", r"\| dense \|([^|]+)\|"),
    ("conv recipe, seeds 0-2", r"\| conv \|([^|]+)\|"),
    ("speed recipe, seeds 0-2", r"\| \*\*speed\*\* \|([^|]+)\|"),
    ("record recipe, seeds 0-2", r"\| \*\*record\*\* \|([^|]+)\|"),
])
def test_the_readmes_recipe_table_quotes_the_results(what, row):
    assert seeds(one(row, README, "README")) == seeds(glance()[what])
