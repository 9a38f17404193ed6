#!/usr/bin/env python3
"""Writes a realistic pytest-style JUnit XML report of N test cases for benchmarks.

The mix is what a large pytest run writes: mostly passes, failures with multi-line
tracebacks, skips, a few setup errors, captured output on some cases, record_property
properties, and non-ASCII names and messages. The output is deterministic for a seed.
100,000 cases (the default) make about 50 MB.

usage: gen_junit_report.py OUTPUT.xml [--cases N] [--seed S]
"""

import argparse
import random
import sys
from xml.sax.saxutils import escape, quoteattr

WORDS = ["build", "cache", "config", "parser", "network", "storage", "auth", "session",
         "render", "export", "import", "schema", "queue", "worker", "retry", "upload",
         "métrique", "données", "配置", "テスト"]


def traceback(rng, module, test, line):
    """A pytest long traceback: source lines, the failing line, E lines, a location."""
    lines = [f"    def {test}(self, fixture_{rng.choice(WORDS[:10])}):"]
    for i in range(rng.randint(12, 40)):
        word = rng.choice(WORDS)
        lines.append(f"        value_{i} = compute_{word}(fixture, index={i}, mode='{word}')")
    expected = rng.randint(0, 10**6)
    lines.append(f">       assert result == {expected}, f\"unexpected {{result}} <for> {test}\"")
    lines.append(f"E       AssertionError: unexpected {expected + 1} <for> {test} — ✗")
    lines.append(f"E       assert {expected + 1} == {expected}")
    for i in range(rng.randint(2, 12)):
        lines.append(f"E         +  where {expected + 1} = compute_{rng.choice(WORDS)}(<Fixture id={i}>)")
    lines.append("")
    lines.append(f"{module.replace('.', '/')}.py:{line}: AssertionError")
    return "\n".join(lines), f"AssertionError: unexpected {expected + 1} <for> {test} — ✗"


def setup_error(rng, module, line):
    """A pytest setup error: the fixture's source and the exception."""
    host = f"db-{rng.randint(1, 40)}.internal"
    lines = ["@pytest.fixture(scope=\"module\")", "    def database():"]
    lines += [f"        settings = load_settings(section='{rng.choice(WORDS)}')" for _ in range(rng.randint(2, 6))]
    lines.append(f">       return connect(\"{host}\", timeout=5)")
    lines.append(f"E       ConnectionRefusedError: [Errno 111] connection to {host} refused")
    lines.append("")
    lines.append(f"{module.replace('.', '/')}.py:{line}: ConnectionRefusedError")
    return "\n".join(lines), f"failed on setup with \"ConnectionRefusedError: connection to {host} refused\""


def captured_output(rng, test):
    lines = [f"running {test}"]
    for i in range(rng.randint(4, 18)):
        lines.append(f"[{i:03d}] step {rng.choice(WORDS)} took {rng.random() * 100:.3f} ms — ok")
    return "\n".join(lines) + "\n"


def write_case(out, rng, index):
    module = f"tests.{rng.choice(WORDS[:16])}.test_{rng.choice(WORDS)}_{index // 50:04d}"
    test = f"test_{rng.choice(WORDS)}_{index:06d}"
    if rng.random() < 0.2:
        test += f"[{rng.choice(WORDS)}-{rng.randint(0, 99)}]"
    line = rng.randint(10, 2000)
    seconds = rng.expovariate(1 / 0.05)
    attrs = f'classname={quoteattr(module)} name={quoteattr(test)} time="{seconds:.3f}"'
    roll = rng.random()
    body = []
    if roll < 0.10:
        text, message = traceback(rng, module, test, line)
        body.append(f"<failure message={quoteattr(message)}>{escape(text)}</failure>")
    elif roll < 0.12:
        text, message = setup_error(rng, module, line)
        body.append(f"<error message={quoteattr(message)}>{escape(text)}</error>")
    elif roll < 0.19:
        reason = f"requires {rng.choice(WORDS)} service"
        body.append(f'<skipped type="pytest.skip" message={quoteattr(reason)}>'
                    f"{escape(module.replace('.', '/'))}.py:{line}: {escape(reason)}</skipped>")
    if rng.random() < 0.15:
        body.append(f'<properties><property name="memoryUsed" value="{rng.randint(500, 90000)}" />'
                    f'<property name="owner" value={quoteattr(rng.choice(WORDS))} /></properties>')
    if rng.random() < 0.2:
        body.append(f"<system-out>{escape(captured_output(rng, test))}</system-out>")
    if body:
        out.write(f"<testcase {attrs}>{''.join(body)}</testcase>")
    else:
        out.write(f"<testcase {attrs} />")
    return seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output")
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=20240301)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with open(args.output, "w", encoding="utf-8", newline="\n") as out:
        out.write('<?xml version="1.0" encoding="utf-8"?><testsuites>')
        # pytest writes the suite's counts first; these are placeholders the reader must
        # not trust (counts are recomputed from the cases).
        out.write(f'<testsuite name="pytest" errors="0" failures="0" skipped="0" tests="{args.cases}" '
                  f'time="{args.cases * 0.05:.3f}" timestamp="2024-03-01T10:15:30.123456" hostname="ci-runner-7">')
        for index in range(args.cases):
            write_case(out, rng, index)
            out.write("\n" if index % 10 == 9 else "")
        out.write("</testsuite></testsuites>\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
