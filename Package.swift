// swift-tools-version: 6.1
import PackageDescription

// Layering (ARCHITECTURE.md §1): swiftmp → Kernels → Multiprocessing → MPI → CMPI, and Wire
// (the codec) under both Multiprocessing and MPI.
// The `MPI` trait (default on) brings the Open MPI backend: `MPI`/`CMPI` (pkg-config `ompi-c`)
// become dependencies of Multiprocessing and swiftmp only when it is on, and the code that uses
// them is under `#if MPI` (ARCHITECTURE.md §1). `swift build --disable-default-traits` builds
// Multiprocessing, Kernels and swiftmp without Open MPI (the local backend only).
// Library products are linked statically into executables (SwiftPM's default for
// `.library` without a type): the start-up hook in CSystemShims runs before `main`
// and must see the executable's types.

let package = Package(
    name: "swift-multiprocessing",
    products: [
        .library(name: "Multiprocessing", targets: ["Multiprocessing"]),
        .library(name: "MPI", targets: ["MPI"]),
        .library(name: "Kernels", targets: ["Kernels"]),
        .executable(name: "swiftmp", targets: ["swiftmp"]),
    ],
    traits: [
        .trait(
            name: "MPI",
            description: "The Open MPI backend (Backend.mpi, mpirun and srun launches, objects served by rank 0); "
                + "needs Open MPI and its pkg-config file ompi-c. Off: the local backend only, no Open MPI needed."
        ),
        .default(enabledTraits: ["MPI"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        // `swift package generate-documentation` (Scripts/docs.sh); not linked into anything.
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CMPI",
            pkgConfig: "ompi-c",
            providers: [.apt(["libopenmpi-dev"])]
        ),
        .target(
            name: "CSystemShims",
            cSettings: [.define("_GNU_SOURCE")]
        ),
        // The binary codec, below MPI so that `Communicator` can send `Codable` values too.
        .target(name: "Wire"),
        .target(name: "MPI", dependencies: ["CMPI", "Wire"]),
        .target(
            name: "Multiprocessing",
            dependencies: [
                "CSystemShims", "Wire", .target(name: "MPI", condition: .when(traits: ["MPI"])),
                .product(name: "Logging", package: "swift-log"),
            ]),
        // The kernels' build-time vector width and FMA (a C header Swift imports): no flags.
        .target(name: "KernelsSupport"),
        .target(name: "Kernels", dependencies: ["Multiprocessing", "KernelsSupport"]),
        .executableTarget(
            name: "swiftmp",
            dependencies: [
                "Kernels", "Multiprocessing", .target(name: "MPI", condition: .when(traits: ["MPI"])),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(name: "kernels-bench", dependencies: ["Kernels"]),
        // Swift twins of Python multiprocessing tutorial programs, one file each.
        .executableTarget(name: "seed-examples", dependencies: ["Multiprocessing"], path: "Examples/seed-examples"),
        // Runs every built example and checks its output.
        .testTarget(name: "ExamplesTests", dependencies: ["seed-examples", "TestSupport"]),
        // Launching built executables and Scripts/ from tests (shared by the test targets).
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(
            name: "MultiprocessingTests",
            dependencies: [
                "Multiprocessing", .product(name: "Logging", package: "swift-log"),
            ]),
        // CPython's Lib/test/_test_multiprocessing.py cases, ported to this API (every start method).
        .testTarget(name: "CPythonPortTests", dependencies: ["Multiprocessing"]),
        .testTarget(name: "WireTests", dependencies: ["Wire"]),
        // SPMD self-test of the MPI layer: every rank runs main (imports only MPI).
        .executableTarget(name: "mpi-selftest", dependencies: [.target(name: "MPI", condition: .when(traits: ["MPI"]))]),
        // Launches real mpirun on the built mpi-selftest, so it depends on the executable.
        .testTarget(
            name: "MPITests",
            dependencies: [
                .target(name: "MPI", condition: .when(traits: ["MPI"])), "mpi-selftest", "TestSupport",
            ]),
        .testTarget(name: "KernelsTests", dependencies: ["Kernels", "Multiprocessing"]),
        // Runs the built CLI: outputs, errors, signals.
        .testTarget(name: "SwiftMPTests", dependencies: ["swiftmp", "TestSupport"]),
        // One pool program on every backend (local, mpirun -np 1…4, the netns cluster).
        .executableTarget(
            name: "mpi-pool-check",
            dependencies: [
                "Multiprocessing", .product(name: "Logging", package: "swift-log"),
            ]),
        .testTarget(name: "MPIPoolTests", dependencies: ["Multiprocessing", "mpi-pool-check", "swiftmp", "TestSupport"]),
        // Queue, Lock, Event, … between rank 0 and worker ranks (served by rank 0), locally and
        // under mpirun -np 2/3; the primitives not offered across ranks fail at creation.
        .executableTarget(name: "mpi-object-check", dependencies: ["Multiprocessing"]),
        .testTarget(name: "MPIObjectTests", dependencies: ["mpi-object-check", "TestSupport"]),
        // swiftmp and mpi-object-check under a real one-node Slurm (Scripts/slurm/setup.sh): sbatch, srun --mpi=pmix.
        .testTarget(name: "SlurmTests", dependencies: ["swiftmp", "mpi-object-check", "TestSupport"]),
    ],
    swiftLanguageModes: [.v6]
)
