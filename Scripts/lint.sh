#!/bin/sh
# swift-format (the toolchain's `swift format`) with the checked-in .swift-format.
#   Scripts/lint.sh         the rules (naming, imports, `forEach`, access levels, …): fails
#                           on any finding; run by CI.
#   Scripts/lint.sh --all   also the layout findings of swift-format's pretty printer (line
#                           breaks, indentation, spacing, line length, trailing commas), as
#                           `swift format lint --strict`: the code is laid out by hand
#                           (arguments aligned under the opening parenthesis, short
#                           one-line bodies), which the pretty printer would rewrite, and
#                           swift-format cannot turn these findings off
#                           (swiftlang/swift-format#764), so this mode reports but is not
#                           enforced.
# A deliberate exception is marked in the code with `// swift-format-ignore: RuleName`.
set -eu
cd "$(dirname "$0")/.."
paths="Package.swift Sources Tests Examples Benchmarks"
# The pretty printer's finding categories.
layout='\[(AddLines|RemoveLine|Indentation|Spacing|LineLength|TrailingComma|TrailingWhitespace)\]'
out=$(mktemp)
trap 'rm -f "$out"' EXIT
status=0
# shellcheck disable=SC2086
swift format lint --recursive --parallel $paths >"$out" 2>&1 || status=$?
if grep -v -E 'warning: |^[^:]+:[0-9]+:[0-9]+: note: ' "$out" | grep . >&2; then
    echo "lint: swift format failed (above)" >&2
    exit 1
fi
if [ "${1-}" = "--all" ]; then
    sort -u "$out"
    count=$(sort -u "$out" | grep -c 'warning: ' || true)
    sort -u "$out" | sed -n -E 's/.*warning: \[([A-Za-z]+)\].*/\1/p' | sort | uniq -c | sort -rn
    echo "lint --all: $count findings"
    [ "$count" -eq 0 ]
    exit
fi
rules=$(sort -u "$out" | grep 'warning: ' | grep -v -E "$layout" || true)
if [ -n "$rules" ]; then
    printf '%s\n' "$rules" >&2
    echo "lint: $(printf '%s\n' "$rules" | wc -l) swift-format findings (above): fix them, or mark a deliberate exception with // swift-format-ignore: RuleName" >&2
    exit 1
fi
echo "lint: no swift-format rule findings ($(sort -u "$out" | grep -c -E "$layout" || true) layout findings not enforced, Scripts/lint.sh --all)"
