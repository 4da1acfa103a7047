"""Counts of the code's contracts, for issue 17's before and after.

    python benchmarks/structure.py [SRC_PACKAGE_DIR]   # default src/digitnet

Prints the longest parameter list of any function (self and cls not
counted), the call with the most positional arguments, and the lines that
parse layer strings or branch on a network's kind, read with ast and
regular expressions from the source as it is.
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


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent.parent / "src" / "digitnet")
