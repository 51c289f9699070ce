// swift-tools-version: 6.1
import PackageDescription

// Micro-benchmarks of swift-multiprocessing with ordo-one/benchmark: the wire codec and the
// pool's hot path. A separate package so that the main package's build and tests never pull
// the benchmark framework (its first build takes minutes). Run from the repository root:
//
//   swift package --package-path Benchmarks benchmark
//
// The benchmark plugin finds each suite's sources in Benchmarks/Benchmarks/<target>/.

let package = Package(
    name: "swift-multiprocessing-benchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        // Named, so that the product references hold whatever the checkout directory is called.
        .package(name: "swift-multiprocessing", path: "../"),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "WireCodec",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "Multiprocessing", package: "swift-multiprocessing"),
            ],
            path: "Benchmarks/WireCodec",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        .executableTarget(
            name: "PoolHotPath",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "Multiprocessing", package: "swift-multiprocessing"),
            ],
            path: "Benchmarks/PoolHotPath",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ],
    swiftLanguageModes: [.v6]
)
