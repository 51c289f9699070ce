#!/bin/sh
# The package without Open MPI: with its `MPI` trait off, Multiprocessing, Kernels and swiftmp
# build and work (local backend) on a machine where `pkg-config ompi-c` fails, and the MPI
# backend says the build has no MPI. Two builds, each in its own folder (about 1 minute each
# from scratch on 2 CPUs, seconds when up to date):
#   1. this package, `swift build --disable-default-traits --product swiftmp` (.build-nompi);
#   2. a package that depends on this one with `traits: []` (README "Use it from your
#      package"), in $TMPDIR/swiftmp-nompi-check-<uid>.
# PKG_CONFIG_LIBDIR points at an empty folder (and PKG_CONFIG_PATH is unset), so that Open MPI
# cannot be found even where it is installed.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
work=${TMPDIR:-/tmp}/swiftmp-nompi-check-$(id -u)
mkdir -p "$work/empty-pkgconfig" "$root/.build-nompi"
unset PKG_CONFIG_PATH
export PKG_CONFIG_LIBDIR="$work/empty-pkgconfig"
if pkg-config --exists ompi-c 2>/dev/null; then
    echo "check-no-mpi: pkg-config still finds ompi-c with PKG_CONFIG_LIBDIR=$PKG_CONFIG_LIBDIR" >&2
    exit 1
fi
fail() {
    echo "check-no-mpi: $*" >&2
    exit 1
}

log=$root/.build-nompi/check.log
if ! (cd "$root" && swift build --disable-default-traits --scratch-path .build-nompi --product swiftmp) >"$log" 2>&1; then
    cat "$log" >&2
    fail "swiftmp does not build with the MPI trait off (above)"
fi
! grep -E "warning:" "$log" >&2 || fail "the build without MPI has warnings (above)"
swiftmp=$(cd "$root" && swift build --disable-default-traits --scratch-path .build-nompi --show-bin-path)/swiftmp
! ldd "$swiftmp" | grep -i mpi >&2 || fail "swiftmp built without the MPI trait links an MPI library (above)"

# The local backend works.
out=$(env -u OMPI_COMM_WORLD_SIZE -u OMPI_COMM_WORLD_RANK -u PMIX_RANK "$swiftmp" pi --samples 1000000 --processes 2) ||
    fail "swiftmp pi failed: $out"
case $out in *"pi ≈ 3.14"*) ;; *) fail "swiftmp pi printed: $out" ;; esac
out=$("$swiftmp" info) || fail "swiftmp info failed: $out"
case $out in *"mpi library: none (built without the MPI trait)"*) ;; *) fail "swiftmp info printed: $out" ;; esac
# The MPI backend, asked for or chosen under mpirun (rank 0), says the build has none.
if out=$("$swiftmp" info --backend mpi 2>&1); then fail "swiftmp info --backend mpi succeeded: $out"; fi
case $out in *"built without Open MPI"*"MPI trait"*) ;; *) fail "swiftmp info --backend mpi printed: $out" ;; esac
if out=$(OMPI_COMM_WORLD_SIZE=2 OMPI_COMM_WORLD_RANK=0 "$swiftmp" pi --samples 1000 2>&1); then
    fail "rank 0 of an mpirun job built without MPI ran: $out"
fi
case $out in *"MPI trait"*) ;; *) fail "rank 0 of an mpirun job built without MPI printed: $out" ;; esac
# A rank >= 1 has nothing to serve: it exits quietly (status 0) before main.
out=$(OMPI_COMM_WORLD_SIZE=2 OMPI_COMM_WORLD_RANK=1 "$swiftmp" pi --samples 1000 2>&1) ||
    fail "rank 1 of an mpirun job built without MPI failed: $out"
[ -z "$out" ] || fail "rank 1 of an mpirun job built without MPI printed: $out"
# A real mpirun job, where mpirun exists: rank 0's error, once.
if command -v mpirun >/dev/null; then
    if out=$(sh "$root/Scripts/mpirun.sh" --timeout 60 -np 3 "$swiftmp" pi --samples 1000 2>&1); then
        fail "an mpirun job of swiftmp built without MPI succeeded: $out"
    fi
    [ "$(printf '%s\n' "$out" | grep -c 'built without Open MPI')" -eq 1 ] ||
        fail "an mpirun job of swiftmp built without MPI did not print its error once: $out"
fi

# A dependent package turns the trait off with `traits: []`.
package=$work/no-mpi-user
ln -sfn "$root" "$work/swift-multiprocessing"
mkdir -p "$package/Sources/no-mpi-user"
cat >"$package/Package.swift" <<'SWIFT'
// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "no-mpi-user",
    dependencies: [
        .package(path: "../swift-multiprocessing", traits: []),
    ],
    targets: [
        .executableTarget(
            name: "no-mpi-user",
            dependencies: [.product(name: "Multiprocessing", package: "swift-multiprocessing")]
        ),
    ]
)
SWIFT
cat >"$package/Sources/no-mpi-user/main.swift" <<'SWIFT'
import Multiprocessing

struct Square: ParallelFunction {
    func callAsFunction(_ x: Int) -> Int { x * x }
}

print(try Pool.with(processes: 2, backend: .local) { try $0.map(Square(), 0..<5) })
do {
    _ = try Pool(processes: 1, backend: .mpi)
    print("the MPI backend started")
} catch let error as PoolError where error.code == .backendUnavailable {
    print("backendUnavailable: \(error)")
}
SWIFT
log=$work/no-mpi-user.log
if ! (cd "$package" && swift build) >"$log" 2>&1; then
    cat "$log" >&2
    fail "a package depending on this one with traits: [] does not build (above)"
fi
out=$(cd "$package" && "$(swift build --show-bin-path)/no-mpi-user" 2>&1) || fail "no-mpi-user failed: $out"
case $out in "[0, 1, 4, 9, 16]"*"backendUnavailable: "*"MPI trait"*) ;; *) fail "no-mpi-user printed: $out" ;; esac
echo "check-no-mpi: Multiprocessing, Kernels and swiftmp build and run without Open MPI"
