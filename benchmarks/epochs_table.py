"""Time and accuracy per epoch of runs, from their metrics files, as the
markdown tables of benchmarks/RESULTS.md ("Where the time goes").

    python benchmarks/epochs_table.py [--every K] RUN.json [RUN.json ...]

Each row is one epoch: the learning rate at its end, the seconds spent
training (`seconds`) and measuring the validation and test sets after it
(the rest of `elapsed`), and the two accuracies; the last row sums the
seconds (--every K: every K-th epoch's row, the first, the last and the
best validation epoch's).  A run's start-up (loading data, building the network) is in
neither: it is the wall time `/usr/bin/time` gives less the last `elapsed`.
"""

import sys

from digitnet import plots


def table(path, every=1):
    """The markdown lines of one run's table."""
    run = plots.read_metrics(path)
    valid = [r.get("validation_accuracy") for r in run["epochs"]]
    numbered = [i for i, v in enumerate(valid) if plots.number(v)]
    best = max(numbered, key=lambda i: (valid[i], -i)) if numbered else None  # the first best
    last = len(run["epochs"]) - 1
    lines = [f"`{path}`:", "",
             "| epoch | eta | training s | measuring s | validation | test |",
             "| --- | --- | --- | --- | --- | --- |"]
    before = train = measure = 0.0
    for i, r in enumerate(run["epochs"]):
        seconds, elapsed = r.get("seconds", 0.0), r.get("elapsed", before)
        spent = max(elapsed - before - seconds, 0.0)
        before, train, measure = elapsed, train + seconds, measure + spent
        accuracy = [f"{100 * r[k]:.2f}%" if plots.number(r.get(k)) else "-"
                    for k in ("validation_accuracy", "test_accuracy")]
        if i in (0, last, best) or (i + 1) % every == 0:
            mark = "**" if i == best else ""
            lines.append(f"| {mark}{r.get('epoch', '?')}{mark} | {r.get('eta', 0):.3g} | "
                         f"{seconds:.1f} | {spent:.1f} | {accuracy[0]} | {accuracy[1]} |")
    lines.append(f"| all | | {train:.1f} | {measure:.1f} | | |")
    return lines


def main(args):
    every = 1
    if args[:1] == ["--every"]:
        if len(args) < 2 or not args[1].isdigit() or int(args[1]) < 1:
            sys.exit("epochs_table: --every takes a whole number >= 1")
        every, args = int(args[1]), args[2:]
    if not args:
        sys.exit("usage: " + __doc__.strip().splitlines()[2].strip())
    for path in args:
        try:
            print("\n".join(table(path, every)) + "\n")
        except ValueError as e:
            sys.exit(f"epochs_table: {e}")


if __name__ == "__main__":
    main(sys.argv[1:])
