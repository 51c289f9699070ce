#!/bin/sh
# Builds the DocC documentation of Multiprocessing, MPI and Kernels with swift-docc-plugin
# into .build/docs/<Module> (open .build/docs/<Module>/index.html through a web server, or
# `swift package --disable-sandbox preview-documentation --target Multiprocessing`).
# Fails on any DocC warning: a broken symbol or article link, an undocumented parameter.
#   Scripts/docs.sh [Module…]     (default: all three)
set -eu
cd "$(dirname "$0")/.."
[ $# -gt 0 ] || set -- Multiprocessing MPI Kernels
mkdir -p .build/docs
for module in "$@"; do
    log=.build/docs/$module.log
    if ! swift package --allow-writing-to-directory .build/docs generate-documentation --target "$module" \
            --output-path ".build/docs/$module" --warnings-as-errors >"$log" 2>&1; then
        grep -E -A4 "^(warning|error):" "$log" >&2 || cat "$log" >&2
        echo "docs: the documentation of $module has warnings or errors (above)" >&2
        exit 1
    fi
    echo "docs: $module → .build/docs/$module"
done
