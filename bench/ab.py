#!/usr/bin/env python3
"""SMTP ingest of two postroom source trees, A and B, in interleaved pairs of runs.

    git worktree add /tmp/before <commit>
    python bench/ab.py /tmp/before . --size 4096 --messages 1500 --pairs 8

A shared machine's rates drift by a fifth within minutes, so two runs minutes apart cannot
show a change under 10%; pairs of runs, each started right after the other, can.  Each run
starts that tree's server fresh (the postroom peer of its bench/smtp_ingest.py, its SMTP
workers importing that tree's code), sends 100 warm-up messages, then measures ``--messages``
durably stored messages the way bench/smtp_ingest.py does (smtp-source when installed).
Which tree goes first alternates.  Printed: each pair, then the medians of the per-pair ratios
B/A of the rate and of the server CPU per message.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from types import ModuleType

WARM_UP = 100


def load(tree: Path, name: str) -> ModuleType:
    """The tree's bench/smtp_ingest.py as a module of its own."""
    path = tree / "bench" / "smtp_ingest.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))  # its harness.py
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(path.parent))
    return module


def run(
    tree: Path, ingest: ModuleType, args: argparse.Namespace, client: str
) -> tuple[float, float]:
    """(durable msg/s, server CPU ms per message) of one fresh server."""
    os.environ["PYTHONPATH"] = str(tree / "src")  # for the SMTP worker processes
    with tempfile.TemporaryDirectory() as folder:
        peer = ingest.PostroomPeer()
        try:
            peer.start(Path(folder))
            ingest.measure(peer, args.sessions, WARM_UP, args.size, False, client)
            _, rate, _, cpu = ingest.measure(
                peer, args.sessions, args.messages, args.size, False, client
            )
        finally:
            peer.stop()
    return rate, cpu or 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a", type=Path, help="source tree A (the reference)")
    parser.add_argument("b", type=Path, help="source tree B")
    parser.add_argument("--size", type=int, default=4096, help="message size in bytes")
    parser.add_argument("--messages", type=int, default=1500, help="messages per run")
    parser.add_argument("--sessions", type=int, default=1, help="concurrent sessions")
    parser.add_argument("--pairs", type=int, default=8)
    args = parser.parse_args()
    trees = {"A": args.a.resolve(), "B": args.b.resolve()}
    modules = {k: load(tree, f"smtp_ingest_{k}") for k, tree in trees.items()}
    client = "smtp-source" if shutil.which("smtp-source") else "python"
    print(
        f"A {trees['A']}\nB {trees['B']}\nclient: {client}; {args.size} bytes, "
        f"{args.sessions} session(s), {args.messages} messages per run",
        flush=True,
    )
    rates: list[float] = []
    cpus: list[float] = []
    for pair in range(args.pairs):
        order = ("A", "B") if pair % 2 == 0 else ("B", "A")
        got = {k: run(trees[k], modules[k], args, client) for k in order}
        (rate_a, cpu_a), (rate_b, cpu_b) = got["A"], got["B"]
        rates.append(rate_b / rate_a)
        cpus.append(cpu_b / cpu_a if cpu_a else 1.0)
        print(
            f"pair {pair + 1}: A {rate_a:7.1f} msg/s {cpu_a:.2f} ms/msg   "
            f"B {rate_b:7.1f} msg/s {cpu_b:.2f} ms/msg   B/A {rates[-1]:.3f}",
            flush=True,
        )
    print(
        f"median B/A: rate {statistics.median(rates):.3f}, "
        f"server CPU per message {statistics.median(cpus):.3f} ({args.pairs} pairs)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
