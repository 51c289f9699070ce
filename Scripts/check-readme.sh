#!/bin/sh
# Builds and runs the README's Swift code as a user would: every ```swift block of README.md,
# in a new package that depends on this one by path, with the README's own Package.swift.
#   - the block that starts with `// swift-tools-version` is the package's Package.swift;
#   - a block right after a line "`Sources/NAME/main.swift`:" is that file;
#   - every other block is the main.swift of an executable target readme-N (N counts blocks).
# Prints "== NAME ==" and then the output of each program, in README order; exits non-zero
# if a block does not build or a program fails. Takes ~1 minute the first time (it builds
# this package's libraries in debug in its own folder); later runs reuse that folder.
#   Scripts/check-readme.sh [work folder]   (default: $TMPDIR/swiftmp-readme-check-<uid>,
#   outside the clone: the folder links back to it)
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-${TMPDIR:-/tmp}/swiftmp-readme-check-$(id -u)}
mkdir -p "$work"
work=$(cd "$work" && pwd)
# The README's Package.swift says `.package(path: "../swift-multiprocessing")`: the package's
# name is that folder's name, whatever this clone is called.
ln -sfn "$root" "$work/swift-multiprocessing"
package=$work/my-tool
rm -rf "$package/Sources" "$package/Package.swift" "$work/blocks"
mkdir -p "$package/Sources" "$work/blocks"

# One file per block (blocks/N.swift), and blocks/N.path for a labelled one.
awk -v out="$work/blocks" '
    /^```swift[ \t]*$/ { n++; inside = 1; file = out "/" n ".swift"; printf "" > file
                         if (label != "") { print label > (out "/" n ".path"); close(out "/" n ".path") }
                         next }
    inside && /^```[ \t]*$/ { inside = 0; close(file); label = ""; next }
    inside { print > file; next }
    /^`Sources\/[^`]*\/main\.swift`:[ \t]*$/ { label = $0; gsub(/[`:]/, "", label); next }
    /[^ \t]/ { label = "" }
' "$root/README.md"

targets=""
names=""
for block in $(ls "$work/blocks"/*.swift | sort -t/ -k1 -V); do
    n=$(basename "$block" .swift)
    if head -n 1 "$block" | grep -q '^// swift-tools-version'; then
        cp "$block" "$package/Package.swift"
    elif [ -f "$work/blocks/$n.path" ]; then
        path=$(cat "$work/blocks/$n.path")
        mkdir -p "$package/$(dirname "$path")"
        cp "$block" "$package/$path"
        names="$names $(basename "$(dirname "$path")")"
    else
        mkdir -p "$package/Sources/readme-$n"
        cp "$block" "$package/Sources/readme-$n/main.swift"
        targets="$targets \"readme-$n\","
        names="$names readme-$n"
    fi
done
[ -f "$package/Package.swift" ] || { echo "check-readme: README.md has no Package.swift block" >&2; exit 1; }
cat >>"$package/Package.swift" <<SWIFT

// Added by Scripts/check-readme.sh: the README's other blocks, one executable each.
for name in [$targets] as [String] {
    package.targets.append(.executableTarget(
        name: name, dependencies: [.product(name: "Multiprocessing", package: "swift-multiprocessing")]))
}
SWIFT

if ! swift build --package-path "$package" >"$work/build.log" 2>&1; then
    grep -v '^\[' "$work/build.log" >&2
    echo "check-readme: the README's code does not build (see above)" >&2
    exit 1
fi
bin=$(swift build --package-path "$package" --show-bin-path)
status=0
for name in $names; do
    echo "== $name =="
    # Each program runs in a fresh folder of its own (files it writes, e.g. a checkpoint
    # journal, start anew and stay out of the repository).
    rm -rf "$work/run-$name" && mkdir -p "$work/run-$name"
    (cd "$work/run-$name" && timeout 120 "$bin/$name" </dev/null 2>&1) \
        || { echo "check-readme: $name exited with status $?" >&2; status=1; }
done
exit $status
