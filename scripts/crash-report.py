#!/usr/bin/env python3
"""Summarises the runtime's crash reports (*.crashreport.json, written by createdump when
DOTNET_EnableCrashReport=1) in a few lines: the crashed thread's frames, innermost first, and the
tests the other threads were running. Used by scripts/test.sh when the test process dies.

    python3 scripts/crash-report.py DIR
"""
import json
import os
import sys

MAX_CRASH_FRAMES = 18
MAX_OTHER_THREADS = 6


def frame_text(f):
    if f.get("method_name"):
        return f"{f.get('filename', '?')}!{f['method_name']}"
    module = f.get("native_module") or ("(managed, unnamed)" if f.get("is_managed") == "true" else "?")
    name = f.get("unmanaged_name")
    return f"{module}!{name}" if name else f"{module}+{f.get('native_image_offset', '?')}"


def test_frames(frames):
    """The thread's innermost GradFlow frame and its outermost test frame (what test it was in)."""
    managed = [f["method_name"] for f in frames if f.get("method_name")]
    inner = next((m for m in managed if m.startswith("GradFlow.") and not m.startswith("GradFlow.Tests.")), None)
    test = next((m for m in reversed(managed) if m.startswith("GradFlow.Tests.")), None)
    return inner, test


def summarise(path):
    with open(path, encoding="utf-8") as stream:
        payload = json.load(stream)["payload"]
    threads = payload.get("threads", [])
    print(f"crash report {os.path.basename(path)} ({payload.get('process_name', '?')}, {len(threads)} threads):")
    for t in threads:
        if t.get("crashed") != "true":
            continue
        exception = t.get("managed_exception_type") or "no managed exception"
        print(f"  crashed thread {t.get('native_thread_id')} ({exception}), innermost first:")
        frames = t.get("stack_frames", [])
        # up to the test framework's frames (the test method's caller)
        shown = next((i for i, f in enumerate(frames) if f.get("filename", "").startswith("xunit.")), len(frames))
        shown = min(shown, MAX_CRASH_FRAMES)
        for f in frames[:shown]:
            print(f"    {frame_text(f)}")
        inner, test = test_frames(frames)
        more = f"{len(frames) - shown} more frames; " if len(frames) > shown else ""
        print(f"    ({more}GradFlow: {inner or '-'}; test: {test or '-'})")
    others = []
    for t in threads:
        if t.get("crashed") == "true":
            continue
        inner, test = test_frames(t.get("stack_frames", []))
        if inner or test:
            others.append(f"  thread {t.get('native_thread_id')}: {inner or '-'} under {test or '-'}")
    if others:
        print("  other threads in GradFlow code:")
        for line in others[:MAX_OTHER_THREADS]:
            print(line)


def main():
    folder = sys.argv[1]
    reports = sorted(f for f in os.listdir(folder) if f.endswith(".crashreport.json"))
    for name in reports:
        try:
            summarise(os.path.join(folder, name))
        except (OSError, ValueError, KeyError) as e:
            print(f"crash report {name}: unreadable ({e})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
