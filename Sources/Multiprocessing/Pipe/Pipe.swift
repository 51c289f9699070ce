#if canImport(Glibc)
import Glibc
#endif

/// Two connected `Connection`s: Python's `multiprocessing.Pipe(duplex)`.
///
/// With `duplex` (the default) both ends send and receive. Otherwise the first end only
/// receives and the second only sends, as in Python.
///
/// ```swift
/// let (parentEnd, childEnd) = try Pipe()
/// let child = Process(target: Sender(connection: childEnd))
/// try child.start()
/// childEnd.close()                    // the child has its own copy
/// print(try parentEnd.recv(String.self))
/// ```
///
/// With Foundation imported, `Pipe` also names `Foundation.Pipe`: write
/// `Multiprocessing.Pipe(duplex:)` or `Connection.pipe(duplex:)` then.
// swift-format-ignore: AlwaysUseLowerCamelCase
// Python's name: multiprocessing.Pipe().
public func Pipe(duplex: Bool = true) throws -> (Connection, Connection) {
    try Connection.pipe(duplex: duplex)
}

extension Connection {
    /// Two connected ends; see `Pipe(duplex:)`. The corresponding C function is `socketpair`.
    public static func pipe(duplex: Bool = true) throws -> (Connection, Connection) {
        if MPIObjects.isServing {
            let (first, second) = MPIServedPipeEnd.makePipe()
            return (
                Connection(served: first, readable: true, writable: duplex),
                Connection(served: second, readable: duplex, writable: true)
            )
        }
        var pair: [Int32] = [-1, -1]
        try syscallRetrying("socketpair") {
            socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair)
        }
        if duplex {
            return (
                Connection(fd: pair[0], readable: true, writable: true),
                Connection(fd: pair[1], readable: true, writable: true)
            )
        }
        _ = shutdown(pair[0], Int32(SHUT_WR))
        _ = shutdown(pair[1], Int32(SHUT_RD))
        return (
            Connection(fd: pair[0], readable: true, writable: false),
            Connection(fd: pair[1], readable: false, writable: true)
        )
    }
}

extension Multiprocessing {
    /// `Pipe(duplex:)`, spelled this way where Foundation's `Pipe` is visible.
    // swift-format-ignore: AlwaysUseLowerCamelCase
    public static func Pipe(duplex: Bool = true) throws -> (Connection, Connection) {
        try Connection.pipe(duplex: duplex)
    }
}
