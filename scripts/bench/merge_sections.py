#!/usr/bin/env python3
"""Assembles BENCHMARKS.md from the sections scripts/bench/all.sh ran now
and, with --keep FILE (all.sh --update), the sections of an earlier
BENCHMARKS.md that were not run now, kept as they were.

Every section starts with a marker line naming it and the commit and date
that produced it, so a later update can keep it and the header can list who
produced what:

    <!-- section: NAME; commit: abc1234; date: 2026-12-05 08:09 UTC; status: ok -->

A file written before the markers existed is read by its "## Title" lines
(the titles all.sh gives today); its sections get the commit and date of its
header ("commit abc1234", "on 2026-12-05 08:09 UTC").

Inputs (written by all.sh): DIR/sections.tsv, one line per section in the
order they are published: NAME<TAB>TITLE<TAB>run|failed|skipped; DIR/NAME.md
for each section run now (marker line first); DIR/preamble.md, the header's
first paragraph. Exit status: 0 written, 2 bad input (a message names it).
"""

import argparse
import re
import sys

MARKER = re.compile(
    r"^<!-- section: (?P<name>[a-z0-9_]+); commit: (?P<commit>[^;]+); "
    r"date: (?P<date>[^;]+); status: (?P<status>ok|failed) -->$"
)


class Section:
    def __init__(self, name, commit, date, status, lines):
        self.name = name
        self.commit = commit
        self.date = date
        self.status = status
        self.lines = lines  # the block, marker line included


def marker(name, commit, date, status):
    return f"<!-- section: {name}; commit: {commit}; date: {date}; status: {status} -->"


def parse_marked(text):
    """Sections of a file with markers, by name; what precedes the first marker is the header."""
    sections = {}
    current = None
    for line in text.splitlines():
        m = MARKER.match(line)
        if m:
            current = Section(m["name"], m["commit"], m["date"], m["status"], [line])
            sections[current.name] = current
        elif current is not None:
            current.lines.append(line)
    return sections


def parse_legacy(text, titles, source):
    """Sections of a file written before the markers: split at the known titles."""
    commit = re.search(r"\bcommit ([0-9a-f]{7,40})\b", text)
    date = re.search(r"\bon (\d{4}-\d\d-\d\d \d\d:\d\d UTC)", text)
    if not commit or not date:
        raise ValueError(
            f"{source}: has no section markers and its header names no commit "
            "and date ('commit abc1234', 'on 2026-12-05 08:09 UTC'); cannot tell "
            "which code produced its sections"
        )
    by_title = {f"## {title}": name for name, title in titles.items()}
    sections = {}
    current = None
    for line in text.splitlines():
        name = by_title.get(line)
        if name is not None:
            status = "ok"
            current = Section(name, commit[1], date[1], status, [])
            current.lines.append(marker(name, commit[1], date[1], status))
            current.lines.append(line)
            current.lines.append("")
            current.lines.append(
                f"Run at commit {commit[1]} on {date[1]} (from the header of the "
                "file it was kept from, which predates per-section provenance)."
            )
            sections[name] = current
        elif current is not None:
            if line.startswith("**FAILED**"):
                current.status = "failed"
                current.lines[0] = marker(current.name, current.commit, current.date, "failed")
            current.lines.append(line)
    return sections


def parse(text, titles, source):
    if any(MARKER.match(line) for line in text.splitlines()):
        return parse_marked(text)
    return parse_legacy(text, titles, source)


RUN_AT = re.compile(r"^Run at commit .*?, on (?P<machine>\d+ cores? \(.*\)), [\d.]+ GiB of memory\.$")


def machine_of(section):
    """The machine its "Run at" line names (cores, CPU, kernel), or "not recorded"."""
    for line in section.lines:
        m = RUN_AT.match(line)
        if m:
            return m["machine"]
    return "not recorded"


def read_plan(path):
    plan = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            fields = line.rstrip("\n").split("\t")
            if len(fields) != 3 or fields[2] not in ("run", "failed", "skipped"):
                raise ValueError(f"{path}:{number}: expected NAME<TAB>TITLE<TAB>run|failed|skipped")
            plan.append(tuple(fields))
    return plan


def merge(plan, new_dir, preamble, kept, skip_reason):
    """The whole file, as text."""
    published = []  # (name, Section, how)
    not_run = []
    for name, title, state in plan:
        if state in ("run", "failed"):
            path = f"{new_dir}/{name}.md"
            with open(path, encoding="utf-8") as f:
                section = parse_marked(f.read()).get(name)
            if section is None:
                raise ValueError(f"{path}: no section marker for '{name}'")
            published.append((name, section, "this run" if state == "run" else "FAILED in this run"))
        elif name in kept:
            section = kept[name]
            how = "kept from an earlier run"
            if section.status == "failed":
                how = "kept from an earlier run, which FAILED"
            published.append((name, section, how))
        else:
            not_run.append((name, title))
    out = ["# Benchmarks", "", preamble.rstrip("\n"), ""]
    out.append("Which run produced each section (each section repeats it with its command,")
    out.append("duration, machine and load; compare a section's commit with the current one")
    out.append("before trusting its figures for code changed since):")
    out.append("")
    # The machine column: a section kept from an earlier run may come from
    # another host, and figures from two hosts are not comparable.
    out.append("| section | commit | run on | machine | in this publication |")
    out.append("|---|---|---|---|---|")
    for name, title, _ in plan:
        entry = next((p for p in published if p[0] == name), None)
        if entry is None:
            out.append(f"| {name} | - | - | - | not run ({skip_reason}) |")
        else:
            _, section, how = entry
            out.append(f"| {name} | {section.commit} | {section.date} | {machine_of(section)} "
                       f"| {how} |")
    out.append("")
    if not_run:
        out.append(f"**Not run** ({skip_reason}): their figures are not in this file, and no claim")
        out.append("rests on them until a run includes them:")
        out.append("")
        for name, title in not_run:
            out.append(f"- {name}: {title}")
        out.append("")
    failed = [name for name, _, how in published if "FAILED" in how]
    if failed:
        out.append(f"**Failed benchmarks: {' '.join(failed)}** (see their sections).")
        out.append("")
    for _, section, _ in published:
        lines = list(section.lines)
        while lines and lines[-1] == "":
            lines.pop()
        out.extend(lines)
        out.append("")
    return "\n".join(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", required=True, help="all.sh's raw output folder of this run")
    parser.add_argument("--out", required=True, help="the file to write")
    parser.add_argument("--keep", help="an earlier BENCHMARKS.md whose sections not run now are kept")
    parser.add_argument("--skip-reason", default="not selected")
    args = parser.parse_args()
    try:
        plan = read_plan(f"{args.dir}/sections.tsv")
        titles = {name: title for name, title, _ in plan}
        kept = {}
        if args.keep:
            try:
                with open(args.keep, encoding="utf-8") as f:
                    kept = parse(f.read(), titles, args.keep)
            except FileNotFoundError:
                kept = {}
        with open(f"{args.dir}/preamble.md", encoding="utf-8") as f:
            preamble = f.read()
        text = merge(plan, args.dir, preamble, kept, args.skip_reason)
    except (OSError, ValueError) as e:
        print(f"scripts/bench/merge_sections.py: {e}", file=sys.stderr)
        return 2
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
