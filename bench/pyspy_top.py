"""Summarise a py-spy raw (collapsed-stack) profile: where each thread spends its samples.

    py-spy record --pid PID --threads --format raw -o prof.txt --duration 10
    .venv/bin/python bench/pyspy_top.py prof.txt [--top 25] [--thread MainThread]

bench/ingest.py --profile DIR writes such files for segue's measured runs. Prints,
per thread, the share of samples by self time (the frame on top of the stack) and
by inclusive time (the frame anywhere on the stack), with the file:line folded away
so that one function is one row.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"^(?P<name>.*?) \((?P<file>[^():]*)(?::\d+)?\)$")


def function(frame: str) -> str:
    """``send (segue/asgi.py:40)`` → ``send (segue/asgi.py)``: one row per function."""
    match = _FRAME.match(frame.strip())
    return f"{match['name']} ({match['file']})" if match else frame.strip()


def load(path: Path) -> dict[str, list[tuple[list[str], int]]]:
    threads: dict[str, list[tuple[list[str], int]]] = {}
    for line in path.read_text("utf-8").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        thread = frames[0].split(":", 1)[-1].strip() if frames[0].startswith("thread") else "?"
        threads.setdefault(thread, []).append(([function(f) for f in frames[1:]], int(count)))
    return threads


def summarise(stacks: list[tuple[list[str], int]], top: int) -> str:
    total = sum(count for _, count in stacks)
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for frames, count in stacks:
        if frames:
            own[frames[-1]] += count
        for name in set(frames):
            inclusive[name] += count
    lines = [f"  {total} samples", "  self %   function"]
    lines += [f"  {100 * n / total:6.1f}   {name}" for name, n in own.most_common(top)]
    lines.append("  incl %   function")
    lines += [f"  {100 * n / total:6.1f}   {name}" for name, n in inclusive.most_common(top)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--thread", help="only threads whose name contains this")
    args = parser.parse_args()
    for thread, stacks in sorted(load(args.profile).items(), key=lambda t: -len(t[1])):
        if args.thread and args.thread not in thread:
            continue
        print(f"== {thread}")
        print(summarise(stacks, args.top))


if __name__ == "__main__":
    main()
