"""The package's layout, read from its source: no import cycles, and the
numerical core imports no command-line, plotting, imaging or web code."""

import ast
from pathlib import Path

import digitnet

PACKAGE = Path(digitnet.__file__).parent
# The core: what trains and saves networks.  Everything else (cli*, plots,
# imaging, info, perceptron, extras) may import it, never the other way.
CORE = {"activations", "augment", "backend", "base", "batched", "checkpoint", "config", "costs",
        "data", "download", "engines", "ensemble", "files", "kernels", "layers", "model", "modelfile",
        "network", "npzfile", "optimizers", "params", "runs", "runstate", "schedules",
        "signals", "training"}
# Dependencies point one way: models <- engines <- trainer <- commands and serve.
# At module level a layer imports nothing from the layers after it (a model's
# `sgd` may import the trainer when called: that is the book's word, not a
# dependency of the model).
LAYERS = [("models", {"base", "network", "model", "modelfile", "layers", "activations", "costs",
                      "ensemble", "params"}),
          ("engines", {"engines", "batched", "kernels", "augment", "optimizers"}),
          ("trainer", {"training", "checkpoint", "runstate", "config", "runs", "signals"}),
          ("commands and serve", {"cli", "cli_runs", "cli_show", "cli_serve", "cliargs", "serve",
                                  "bodies", "connections", "plots", "imaging", "info"})]
OUTSIDE = {"argparse", "matplotlib", "PIL", "http", "socketserver", "tqdm"}
SHOW = {"cli", "cli_show", "cliargs", "plots", "imaging", "info", "perceptron", "extras"}


def imports(path):
    """(package modules, outside top-level modules) that `path` imports
    anywhere, function bodies included: a lazy import is still an edge."""
    ours, theirs = set(), set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            if node.module:  # from .x import y, from .x.y import z
                ours.add(node.module.split(".")[0])
            else:            # from . import x, y
                ours.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            top = node.module.split(".")[0]
            (ours.add(node.module.split(".")[1]) if top == "digitnet" and "." in node.module
             else ours.add("__init__") if top == "digitnet" else theirs.add(top))
        elif isinstance(node, ast.Import):
            theirs.update(alias.name.split(".")[0] for alias in node.names)
    modules = {p.stem for p in PACKAGE.glob("*.py")}
    return {m if m in modules else "__init__" for m in ours}, theirs


def graph():
    return {p.stem: imports(p) for p in PACKAGE.glob("*.py")}


def cycle(edges):
    """One import cycle as a list of modules, or None."""
    state = {}

    def visit(node, path):
        state[node] = "open"
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt, path + [nxt])
                if found:
                    return found
        state[node] = "done"
        return None

    for start in sorted(edges):
        if start not in state:
            found = visit(start, [start])
            if found:
                return found
    return None


def test_the_package_has_no_import_cycle():
    edges = {module: ours - {module} for module, (ours, _) in graph().items()}
    assert cycle(edges) is None, " -> ".join(cycle(edges))


def test_the_core_imports_no_cli_plotting_imaging_or_web_code():
    g = graph()
    assert CORE <= set(g), CORE - set(g)
    for module in CORE:
        ours, theirs = g[module]
        assert not ours & (SHOW | {"__init__"}), (module, ours & SHOW)
        assert not theirs & OUTSIDE, (module, theirs & OUTSIDE)


def top_level_imports(path):
    """The package modules `path` imports at module level (not in functions)."""
    ours = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.level:
            ours.update([node.module.split(".")[0]] if node.module
                        else [alias.name for alias in node.names])
    return ours


def layering_problems(imports):
    """(module, the later layer it imports) for each import against the flow."""
    rank = {m: i for i, (_, modules) in enumerate(LAYERS) for m in modules}
    return [(module, LAYERS[rank[other]][0]) for module, ours in sorted(imports.items())
            if module in rank for other in sorted(ours) if rank.get(other, -1) > rank[module]]


def test_dependencies_point_one_way():
    imports = {p.stem: top_level_imports(p) for p in PACKAGE.glob("*.py")}
    assert set().union(*(m for _, m in LAYERS)) <= set(imports)
    assert layering_problems(imports) == []
    # and the check sees a model importing the trainer, or an engine a command
    assert layering_problems({"network": {"training"}, "batched": {"cli"}}) == [
        ("batched", "commands and serve"), ("network", "trainer")]


def test_the_checks_themselves_can_fail():
    """The cycle finder finds a planted cycle, and the parser sees a lazy import."""
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": set()}) is None
    ours, theirs = imports(PACKAGE / "cli_show.py")
    assert "imaging" in ours and "plots" in ours  # imported inside functions there


def test_ci_fails_when_a_real_data_test_skips_whatever_it_says(tmp_path, mnist_dir):
    """The guard in the root conftest: with Fashion-MNIST missing, its test
    skips with its own message, and DIGITNET_REQUIRE_REAL_DATA=1 fails the run."""
    import os
    import subprocess
    import sys
    (tmp_path / "mnist").symlink_to(Path(mnist_dir) / "mnist")
    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ, DIGITNET_DATA=str(tmp_path), DIGITNET_REQUIRE_REAL_DATA="1")
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "tests/test_cli_show.py", "-k", "fashion_mnist_everywhere"],
                          cwd=root, env=env, capture_output=True, text=True)
    assert done.returncode != 0, done.stdout
    assert "real-data tests: 0 passed, 1 skipped" in done.stdout
