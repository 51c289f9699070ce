// swift-tools-version: 6.1
import PackageDescription

// What one small Pipe message costs on its way through the kernel, beside the system calls a
// C ping-pong makes for the same message (Benchmarks/reports/pipe-round-trip.md): in one
// process and one thread, so no scheduler and no waiting are in the figure — the part of a
// round trip between two spinning processes that is the library's.
//
//   swift build -c release --package-path Benchmarks/pipe-message-cost
//   Benchmarks/pipe-message-cost/.build/release/pipe-message-cost
let package = Package(
    name: "pipe-message-cost",
    dependencies: [.package(name: "swift-multiprocessing", path: "../..")],
    targets: [
        .executableTarget(
            name: "pipe-message-cost",
            dependencies: [.product(name: "Multiprocessing", package: "swift-multiprocessing")]
        )
    ],
    swiftLanguageModes: [.v6]
)
