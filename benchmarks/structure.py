"""Counts of the code's contracts, for issue 17's and 26's before and after.

    python benchmarks/structure.py [SRC_PACKAGE_DIR]   # default src/digitnet
    DIGITNET_DATA=../shared/data python benchmarks/structure.py --chain

Prints the longest parameter list of any function (self and cls not
counted), the call with the most positional arguments, and the lines that
parse layer strings or branch on a network's kind, read with ast and
regular expressions from the source as it is.  `--chain` runs `digitnet
train` (whichever digitnet is imported) for one mini-batch and prints the
stack of digitnet modules from the command to the first weight update,
and how often that path comes back into a module it had left.
"""

import ast
import re
import sys
from pathlib import Path

LAYER_STRINGS = re.compile(r'"conv" in|startswith\(\("fc:"|partition\(":"\)|\.split\(","\)')
KIND = re.compile(r'\["kind"\] ==|kind == FORMAT|config\["kind"\]|kind == "network"|'
                  r'kind == "model"')


def main(root):
    files = sorted(Path(root).glob("*.py"))
    longest_def, longest_call = (0, ""), (0, "")
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                a = node.args
                n = len(a.posonlyargs) + len(a.args) + len(a.kwonlyargs)
                n -= bool(a.args) and a.args[0].arg in ("self", "cls")
                longest_def = max(longest_def, (n, f"{path.name}:{node.lineno} {node.name}"))
            if isinstance(node, ast.Call):
                n = sum(not isinstance(x, ast.Starred) for x in node.args)
                longest_call = max(longest_call,
                                   (n, f"{path.name}:{node.lineno} {ast.unparse(node.func)}"))
    print("longest parameter list:", *longest_def)
    print("longest positional call:", *longest_call)
    for name, pattern in (("lines parsing layer strings", LAYER_STRINGS),
                          ("lines branching on a network's kind", KIND)):
        hits = [f"{p.name}:{i}" for p in files
                for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
        print(f"{name}: {len(hits)}", " ".join(hits))


# Where a step's update is written: an optimizer's step, or a fused kernel's.
UPDATES = {("optimizers", "step"), ("kernels", "update"), ("kernels", "sgd_negated"),
           ("kernels", "adam"), ("engines", "update")}


def chain(flags):
    """The digitnet modules on the stack, outermost first, at the first
    call of an update (UPDATES) during `digitnet train FLAGS`."""
    from digitnet import cli
    found = []

    def watch(frame, event, arg):
        if event != "call" or found:
            return
        module = frame.f_globals.get("__name__", "")
        if (module.rsplit(".", 1)[-1], frame.f_code.co_name) in UPDATES \
                and module.startswith("digitnet"):
            stack = []
            while frame is not None:
                name = frame.f_globals.get("__name__", "")
                if name.startswith("digitnet"):
                    stack.append(f"{name.split('.', 1)[-1]}.{frame.f_code.co_name}")
                frame = frame.f_back
            found.append(stack[::-1])
            raise KeyboardInterrupt  # one step is enough: the run stops cleanly

    sys.setprofile(watch)
    try:
        cli.main(["train", *flags])
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        sys.setprofile(None)
    return found[0] if found else []


def report_chain():
    for flags in (["--epochs", "1"], ["--layers", "fc:30,softmax:10", "--epochs", "1",
                                      "--momentum", "0.9", "--schedule", "one-cycle"]):
        stack = chain(flags)
        modules = [f.split(".")[0] for f in stack]
        runs = [m for i, m in enumerate(modules) if i == 0 or m != modules[i - 1]]
        back = sum(runs[i] in runs[:i] for i in range(len(runs)))
        print(f"digitnet train {' '.join(flags)}: {len(stack)} calls, modules "
              f"{' > '.join(runs)}; {back} returns to a module already left")
        print("   ", " > ".join(stack))


if __name__ == "__main__":
    if sys.argv[1:] == ["--chain"]:
        report_chain()
    else:
        main(sys.argv[1] if len(sys.argv) > 1 else
             Path(__file__).parent.parent / "src" / "digitnet")
