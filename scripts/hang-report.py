#!/usr/bin/env python3
"""Summarises a hang of the test process for scripts/test.sh: the tests still running when the
test platform's hang dump was taken (its *_hang.log files), then, from `dotnet-dump analyze DUMP
-c "clrstack -all"` read on stdin (when it could be produced), the managed stack of every thread that
is inside GradFlow code, innermost frame first, addresses and arguments left out.

    python3 scripts/hang-report.py RESULTS_DIR < clrstack.txt
"""
import glob
import os
import re
import sys

MAX_FRAMES = 30
MAX_THREADS = 12

# a clrstack frame line: child SP, IP, then the frame's text
FRAME = re.compile(r"^\s*[0-9A-Fa-f]{8,16}\s+[0-9A-Fa-f]{8,16}\s+(.*)$")
THREAD = re.compile(r"^OS Thread Id:\s*(0x[0-9a-fA-F]+)")


def running_tests(results):
    logs = sorted(glob.glob(os.path.join(results, "*_hang.log")))
    for log in logs:
        with open(log, encoding="utf-8", errors="replace") as stream:
            lines = [line.rstrip() for line in stream if line.strip()]
        print(f"tests still running when the hang dump was taken ({os.path.basename(log)}; [time running] name):")
        for line in lines or ["(none recorded)"]:
            print(f"  {line}")
    return bool(logs)


def threads(text):
    """(thread id, [frame text]) for each thread of a clrstack -all listing."""
    current, frames = None, []
    for line in text.splitlines():
        m = THREAD.match(line)
        if m:
            if current is not None:
                yield current, frames
            current, frames = m.group(1), []
            continue
        f = FRAME.match(line)
        if current is not None and f and not f.group(1).startswith("["):
            # the method without its source position's directory: "Ns.Type.Method(Args) [file.cs @ 12]"
            frames.append(re.sub(r"\[/.*/([^/]+ @ \d+)\]", r"[\1]", f.group(1).strip()))
    if current is not None:
        yield current, frames


def main():
    results = sys.argv[1] if len(sys.argv) > 1 else "."
    found = running_tests(results)
    stacks = sys.stdin.read() if not sys.stdin.isatty() else ""
    shown = 0
    for tid, frames in threads(stacks):
        if not any(f.startswith("GradFlow.") for f in frames) or shown == MAX_THREADS:
            continue
        shown += 1
        # up to the outermost GradFlow frame (the test method, or a worker thread's loop): the runner's frames say nothing
        last = max(i for i, f in enumerate(frames) if f.startswith("GradFlow."))
        kept = frames[:min(last + 1, MAX_FRAMES)]
        print(f"thread {tid}, innermost first:")
        for f in kept:
            print(f"  {f}")
        if len(kept) < last + 1:
            print(f"  ... {last + 1 - len(kept)} more to the outermost GradFlow frame")
    if stacks and shown == 0:
        print("no thread was inside GradFlow code")
    return 0 if found else 1


if __name__ == "__main__":
    sys.exit(main())
