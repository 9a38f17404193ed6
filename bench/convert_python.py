#!/usr/bin/env python3
"""The Python baseline of `runner convert --format flat`: reads JUnit XML reports with
xml.etree.ElementTree and prints the flat payload JSON of SPEC §2.2 to stdout.

It follows the same rules as the C++ reader and payload builder (counts from the cases,
worst result kept, flaky/rerun attempts only in the description, gtest/ctest skips,
thousands separators in times), so the side-by-side benchmark compares equal work.
Standard library only.

usage: convert_python.py REPORT.xml...
"""

import json
import math
import sys
import xml.etree.ElementTree as ET

STRIP_PREFIX = "tests."
DESCRIPTION_LIMIT = 64 * 1024
RESULT_RANK = {"skipped": 0, "passed": 1, "failure": 2, "error": 3}
RERUN_KINDS = ("flakyFailure", "flakyError", "rerunFailure", "rerunError")
SPACE = " \t\n\r\f\v"


def seconds(value):
    """A time attribute in seconds (C locale, "1,234.5" accepted); None when unreadable."""
    if value is None:
        return None
    try:
        number = float(value.strip(SPACE).replace(",", ""))
    except ValueError:
        return None
    if math.isnan(number) or math.isinf(number) or number < 0:
        return None
    return number


def element_text(element):
    parts = [element.text or ""]
    for child in element:
        parts.append(child.tail or "")
    return "".join(parts)


def outcome_text(element):
    """An outcome's text, with a Surefire rerun's nested trace and output."""
    text = element_text(element)
    out, err = "", ""
    for child in element:
        if child.tag == "stackTrace":
            trace = child.text or ""
            if trace and text and not text.endswith("\n"):
                text += "\n"
            text += trace
        elif child.tag == "system-out":
            out += child.text or ""
        elif child.tag == "system-err":
            err += child.text or ""
    for label, body in (("[system-out]", out), ("[system-err]", err)):
        if body:
            if text:
                text += "\n" if text.endswith("\n") else "\n\n"
            text += label + "\n" + body
    return text


def describe(element, text):
    message = (element.get("message") or "").strip(SPACE)
    text = text.strip(SPACE)
    return message + ("\n\n" if message and text else "") + text


def truncate(text, limit):
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    end = limit
    while end > 0 and (data[end] & 0xC0) == 0x80:
        end -= 1
    return data[:end].decode("utf-8") + f"\n[... {len(data) - end} bytes truncated]"


def read_case(case):
    skipped_by_attribute = (case.get("status") in ("notrun", "disabled", "skipped")
                            or case.get("result") in ("skipped", "suppressed"))
    worst = None
    parts = []
    reruns = []
    memory = None
    for child in case:
        tag = child.tag
        if tag in ("failure", "error", "skipped"):
            if worst is None or RESULT_RANK[tag] > RESULT_RANK[worst]:
                worst = tag
            parts.append(describe(child, outcome_text(child)))
        elif tag in RERUN_KINDS:
            reruns.append(f"[{tag}] " + describe(child, outcome_text(child)))
        elif tag == "properties" and memory is None:
            for prop in child.iter("property"):
                if prop.get("name") == "memoryUsed":
                    value = seconds(prop.get("value", prop.text))
                    if value is not None:
                        memory = math.floor(value + 0.5)
                        break
    status = worst or ("skipped" if skipped_by_attribute else "passed")
    passed = status == "passed"
    description = [p for p in (parts if not passed else []) + reruns if p]
    classname = case.get("classname") or ""
    if classname.startswith(STRIP_PREFIX):
        classname = classname[len(STRIP_PREFIX):]
    name = case.get("name") or ""
    result = {
        "name": f"{classname}::{name}" if classname else name,
        "isPassed": passed,
        "description": truncate("\n\n".join(description), DESCRIPTION_LIMIT),
        "duration": math.floor((seconds(case.get("time")) or 0.0) * 1000 + 0.5),
    }
    if memory is not None:
        result["memoryUsed"] = memory
    return result, status, seconds(case.get("time")) or 0.0


def walk(suite, cases):
    """Appends the cases of `suite` and its nested suites, depth first, in document order."""
    nested = []
    for child in suite:
        if child.tag == "testcase":
            cases.append(read_case(child))
        elif child.tag in ("testsuite", "testsuites"):
            nested.append(child)
    for child in nested:
        walk(child, cases)


def read_report(path):
    root = ET.parse(path).getroot()
    if root.tag not in ("testsuites", "testsuite"):
        raise ValueError(f"{path}: not a JUnit XML report: the root element is <{root.tag}>")
    cases = []
    walk(root, cases)
    total = seconds(root.get("time"))
    if total is None and root.tag == "testsuites":
        times = [seconds(s.get("time")) for s in root if s.tag in ("testsuite", "testsuites")]
        total = sum(times) if times and None not in times else None
    return cases, total


def main(paths):
    cases, total, known = [], 0.0, True
    for path in paths:
        report_cases, report_time = read_report(path)
        cases += report_cases
        if report_time is None:
            known = False
        else:
            total += report_time
    counts = {"passed": 0, "failed": 0, "errored": 0, "skipped": 0}
    for _, status, _ in cases:
        counts[{"failure": "failed", "error": "errored"}.get(status, status)] += 1
    error_details = ""
    if counts["errored"]:
        n = counts["errored"]
        error_details = f"The report has {n} errored test case{'' if n == 1 else 's'}."
    seconds_total = total if known else sum(s for _, _, s in cases)
    payload = {
        "isPassed": bool(cases) and not error_details and counts["failed"] == 0 and counts["skipped"] == 0,
        "isError": bool(error_details),
        "errorDetails": error_details,
        "duration": math.floor(seconds_total * 1000 + 0.5),
        "testResults": [result for result, _, _ in cases],
    }
    sys.stdout.write(json.dumps(payload, ensure_ascii=False, separators=(",", ":")))
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1:]))
