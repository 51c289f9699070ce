#!/usr/bin/env python3
"""README.md's performance figures, taken from BENCHMARKS.md (never typed by hand).

In README.md a figure is written between markers:

    hot `apply` round trip <!-- figure: pool.apply.hot -->15.2 µs<!-- /figure -->

and FIGURES below says which cell of BENCHMARKS.md it is (section, row, column) and how it is
written. The markers are HTML comments: they do not show on a rendered page.

    python3 Scripts/readme_figures.py            rewrite the figures in README.md
    python3 Scripts/readme_figures.py --check    fail if a figure differs from BENCHMARKS.md (CI)

Both fail on a marker whose name is not in FIGURES, and on a performance figure in README.md's
text (a number with µs, ms, ×, …/s; code blocks and `code` excepted) outside markers. A figure
whose section of BENCHMARKS.md says "Not measured in this run" (or is missing) is *pending*:
its README text is kept, and reported, until a Scripts/bench.sh run measures it (bench.sh runs
this script after writing BENCHMARKS.md).
"""
import re
import sys

ROOT = __file__.rsplit("/Scripts/", 1)[0] if "/Scripts/" in __file__ else "."
README = f"{ROOT}/README.md"
BENCHMARKS = f"{ROOT}/BENCHMARKS.md"


def median_text(cell):
    """`401 346 000 [368 296 000–414 484 000]` -> `401 346 000`."""
    return cell.split(" [", 1)[0].strip()


def value(cell):
    return float(median_text(cell).replace("×", "").replace("\u2009", "").replace(" ", ""))


def as_is(unit=""):
    return lambda cell: median_text(cell) + unit


def giga(unit):
    """Draws per second as `0.93 G draws/s` (two significant digits)."""
    return lambda cell: f"{value(cell) / 1e9:.2g} {unit}"


POOL = "Pool: swift-multiprocessing vs Python's multiprocessing"
MPI_POOL = "Pool on the MPI backend vs mpi4py.futures"
OBJECTS = "Shared objects across MPI ranks"
RANDOM = "Random streams"

# name -> (section heading, row label (the start of the first cell), column header, rendering)
FIGURES = {
    "pool.map.chunk_default.ratio": (POOL, "`map` 200 000 tasks, chunksize default", "ratio", as_is()),
    "pool.map.chunk_1.ratio": (POOL, "`map` 200 000 tasks, chunksize 1", "ratio", as_is()),
    "pool.apply.hot": (POOL, "`apply` round trip, hot", "swift-multiprocessing", as_is(" µs")),
    "pool.map.checkpoint.vs_plain": (POOL, "2 000 000 tasks, chunksize 100, checkpoint", "with ÷ plain", as_is()),
    "python.pool.apply.hot": (POOL, "`apply` round trip, hot", "Python `multiprocessing`", as_is(" µs")),
    "mpi.pool.map.chunk_1.ratio": (MPI_POOL, "`map` chunksize 1", "ratio", as_is()),
    "objects.local.lock": (OBJECTS, "`Lock` acquire + release", "local", as_is(" µs")),
    "objects.local.queue": (OBJECTS, "`Queue` put + get", "local", as_is(" µs")),
    "objects.mpi2.lock": (OBJECTS, "`Lock` acquire + release", "mpirun -np 2", as_is(" µs")),
    "objects.mpi2.queue": (OBJECTS, "`Queue` put + get", "mpirun -np 2", as_is(" µs")),
    "objects.mpi3.lock": (OBJECTS, "`Lock` acquire + release", "mpirun -np 3", as_is(" µs")),
    "objects.mpi3.queue": (OBJECTS, "`Queue` put + get", "mpirun -np 3", as_is(" µs")),
    "random.fill": (RANDOM, "`fill`", "native, draws per CPU second", giga("G draws/s")),
    "random.next": (RANDOM, "`next()`", "native, draws per CPU second", giga("G/s")),
    "random.double": (RANDOM, "`Double.random(in:)`", "native, draws per CPU second", giga("G/s")),
    "random.pi_kernel": (RANDOM, "π kernel", "native, draws/s", giga("G draws/s")),
}

MARKER = re.compile(r"<!-- figure: ([A-Za-z0-9_.]+) -->(.*?)<!-- /figure -->")
# A performance figure: a number followed by a time, a ratio or a rate.
UNMARKED = re.compile(r"\d(?:[\d.,\u2009 ]*\d)?\s?(?:[µnm]s\b|×|[kMG]?(?:B|FLOP|draws|tasks|msgs)?/s\b|G draws/s)")


def sections(text):
    """BENCHMARKS.md as {heading: lines}."""
    result, heading = {}, None
    for line in text.splitlines():
        if line.startswith("## "):
            heading = line[3:].strip()
            result[heading] = []
        elif heading is not None:
            result[heading].append(line)
    return result


def cells(line):
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def lookup(benchmarks, name):
    """The figure's README text, or None when BENCHMARKS.md has not measured it."""
    heading, row, column, render = FIGURES[name]
    lines = benchmarks.get(heading)
    if lines is None or any(line.startswith("Not measured") for line in lines):
        return None
    header = None
    for line in lines:
        if not line.startswith("|"):
            header = None
            continue
        if header is None:
            header = cells(line)
            continue
        row_cells = cells(line)
        if row_cells[0].startswith(row) and column in header:
            cell = row_cells[header.index(column)]
            return None if cell in ("", "–") else render(cell)
    raise SystemExit(f"readme_figures: BENCHMARKS.md's section '{heading}' has no row '{row}' with a column "
                     f"'{column}' (figure {name}): update FIGURES in Scripts/readme_figures.py")


def unmarked_figures(text):
    """Performance figures in prose outside markers: (line number, text)."""
    found, fenced = [], False
    for number, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if fenced:
            continue
        prose = re.sub(r"`[^`]*`", "", MARKER.sub("", line))
        found += [(number, match.group(0)) for match in UNMARKED.finditer(prose)]
    return found


def main():
    check = sys.argv[1:] == ["--check"]
    if sys.argv[1:] not in ([], ["--check"]):
        raise SystemExit("usage: readme_figures.py [--check]")
    with open(README) as file:
        readme = file.read()
    with open(BENCHMARKS) as file:
        benchmarks = sections(file.read())
    problems, pending = [], []

    def replace(match):
        name, current = match.group(1), match.group(2)
        if name not in FIGURES:
            problems.append(f"README.md: unknown figure '{name}' (known: {', '.join(sorted(FIGURES))})")
            return match.group(0)
        wanted = lookup(benchmarks, name)
        if wanted is None:
            pending.append(f"{name} ('{current}')")
            return match.group(0)
        if wanted != current and check:
            problems.append(f"README.md: figure {name} says '{current}', BENCHMARKS.md says '{wanted}'")
        return f"<!-- figure: {name} -->{wanted}<!-- /figure -->"

    updated = MARKER.sub(replace, readme)
    for number, figure in unmarked_figures(readme):
        problems.append(f"README.md:{number}: '{figure}' is a performance figure outside "
                        "<!-- figure: NAME -->…<!-- /figure --> markers: take it from BENCHMARKS.md (FIGURES)")
    if pending:
        print("readme_figures: not in BENCHMARKS.md yet (kept until Scripts/bench.sh measures them): "
              + ", ".join(pending))
    if not check and updated != readme:
        with open(README, "w") as file:
            file.write(updated)
        print("readme_figures: README.md's figures rewritten from BENCHMARKS.md")
    if problems:
        print("\n".join(problems), file=sys.stderr)
        if check:
            print("readme_figures: README.md disagrees with BENCHMARKS.md: run python3 Scripts/readme_figures.py",
                  file=sys.stderr)
        sys.exit(1)
    marked = len(MARKER.findall(updated))
    print(f"readme_figures: {marked} figures in README.md, {marked - len(pending)} from BENCHMARKS.md, "
          f"{len(pending)} pending")


if __name__ == "__main__":
    main()
