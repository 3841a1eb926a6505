#!/usr/bin/env python3
"""Summarises the runtime's crash reports (*.crashreport.json, written by createdump when
DOTNET_EnableCrashReport=1) in a few lines: the crashed thread's frames, innermost first, and the
tests the other threads were running. Used by scripts/test.sh when the test process dies.

    python3 scripts/crash-report.py DIR
    python3 scripts/crash-report.py --log LOG

With --log, it reads the test run's output instead: the runtime's own message when the test process
died of a stack overflow or a fatal error (no crash report is written then), printed in full by the
test platform, hundreds of lines of frames above the summary where CI's excerpt of the output may
not reach. It prints the message, the repeated frames and the frames below them up to the test
method, generic instantiations dropped, in a few lines.
"""
import json
import os
import re
import sys

MAX_CRASH_FRAMES = 18
MAX_OTHER_THREADS = 6
MAX_LOG_FRAMES = 24

# the runtime's first line when it ends the process itself (stderr, indented by the test platform)
FATAL = re.compile(r"(Stack overflow\.|Fatal error\.|Unhandled exception\.|Process terminated\.)")


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


def short_frame(line):
    """'at A.B`1[[X, asm, Version=..]].M(System.Object)' -> 'A.B`1.M(Object)'."""
    text = line.strip()[3:]
    while True:
        shorter = re.sub(r"\[\[[^\[\]]*\]\]|\[[^\[\]]*, [^\[\]]*\]", "", text)
        if shorter == text:
            break
        text = shorter
    return re.sub(r"\bSystem\.(\w+)(?=[,)\]])", r"\1", text)


def summarise_log(path):
    """Prints the runtime's fatal message in the run's output and its frames down to the test method; False when there is none."""
    with open(path, encoding="utf-8", errors="replace") as stream:
        lines = stream.read().splitlines()
    start = next((i for i, l in enumerate(lines) if FATAL.search(l)), None)
    if start is None:
        return False
    message = FATAL.search(lines[start])
    print("the test process was ended by the runtime:")
    print(f"  {message.group(0)} {lines[start][message.end():].strip()}".rstrip())
    shown = 0
    for line in lines[start + 1:]:
        text = line.strip()
        if text.startswith("Repeated") or text.startswith("-----"):
            print(f"    {text}")
            continue
        if not text.startswith("at "):
            if shown:
                break
            continue
        frame = short_frame(text)
        if frame.startswith("Xunit.") or frame.startswith("System.Reflection."):
            break  # the test framework's frames below the test method
        print(f"    {frame}")
        shown += 1
        if shown >= MAX_LOG_FRAMES:
            print("    ...")
            break
    return True


def main():
    if sys.argv[1] == "--log":
        summarise_log(sys.argv[2])  # prints nothing when the runtime left no message (failing tests, not a dead process)
        return 0
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
