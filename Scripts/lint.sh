#!/bin/sh
# swift-format (the toolchain's `swift format`) with the checked-in .swift-format: the rules
# (naming, imports, `forEach`, access levels, …) and the pretty printer's layout (line breaks,
# indentation, spacing, line length, trailing commas) alike. Run by CI; fails on any finding.
#   Scripts/lint.sh         lint, listing every finding
#   Scripts/lint.sh --fix   lay the code out as swift-format does (then lint again)
# A deliberate exception is marked in the code with `// swift-format-ignore: RuleName`.
set -eu
cd "$(dirname "$0")/.."
paths="Package.swift Sources Tests Examples Benchmarks"
if [ "${1-}" = "--fix" ]; then
    # shellcheck disable=SC2086
    swift format format --in-place --recursive --parallel $paths
fi
out=$(mktemp)
trap 'rm -f "$out"' EXIT
# shellcheck disable=SC2086
swift format lint --recursive --parallel $paths >"$out" 2>&1 || true
if grep -v -E 'warning: |^[^:]+:[0-9]+:[0-9]+: note: ' "$out" | grep . >&2; then
    echo "lint: swift format failed (above)" >&2
    exit 1
fi
findings=$(sort -u "$out" | grep 'warning: ' || true)
if [ -n "$findings" ]; then
    printf '%s\n' "$findings" >&2
    printf '%s\n' "$findings" | sed -n -E 's/.*warning: \[([A-Za-z]+)\].*/\1/p' | sort | uniq -c | sort -rn >&2
    echo "lint: $(printf '%s\n' "$findings" | wc -l) swift-format findings (above): Scripts/lint.sh --fix lays the code out," \
        "the rest needs a hand (or a deliberate // swift-format-ignore: RuleName)" >&2
    exit 1
fi
echo "lint: no swift-format findings"
