// swift-tools-version: 6.1
import PackageDescription

// The benchmark program built the way a user builds a program that uses this library: a
// separate package that depends on it, `swift build -c release`, no special flags
// (Scripts/bench.sh). Its main target compiles the sources of the `swiftmp` command
// (Sources/swiftmp, through the symbolic link Sources/swiftmp-user), so every call of the
// library it times — `pool.map` over arrays, ranges, strides, lazy maps and sets included —
// is compiled in a module of another package, as in a user's program.
//
//   swift build -c release --package-path Benchmarks/external
//   Benchmarks/external/.build/release/swiftmp-user bench pool

let package = Package(
    name: "swift-multiprocessing-external-bench",
    // The swiftmp sources test `#if MPI` (the MPI ping-pong, the MPI library's name): this
    // package has the trait too, on by default, as the library has.
    traits: [
        .trait(name: "MPI", description: "The MPI parts of the benchmark program (as the library's MPI trait)."),
        .default(enabledTraits: ["MPI"]),
    ],
    dependencies: [
        .package(name: "swift-multiprocessing", path: "../.."),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        .executableTarget(
            name: "swiftmp-user",
            dependencies: [
                .product(name: "Multiprocessing", package: "swift-multiprocessing"),
                .product(name: "MPI", package: "swift-multiprocessing", condition: .when(traits: ["MPI"])),
                .product(name: "Kernels", package: "swift-multiprocessing"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Sources/swiftmp-user"
        ),
        // Each input kind's map in a block of its own, with its CPU time (input-kinds.md).
        .executableTarget(
            name: "input-kinds-cpu",
            dependencies: [.product(name: "Multiprocessing", package: "swift-multiprocessing")],
            path: "Sources/input-kinds-cpu"
        ),
        // A Set's map and an Array(0..<n) made in the call beside what their extra work costs
        // alone, in the same repetitions (input-kinds.md, session 10).
        .executableTarget(
            name: "input-floors",
            dependencies: [.product(name: "Multiprocessing", package: "swift-multiprocessing")],
            path: "Sources/input-floors"
        ),
    ],
    swiftLanguageModes: [.v6]
)
