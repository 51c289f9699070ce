import CSystemShims

#if canImport(Glibc)
import Glibc
#endif

/// Something `wait(on:timeout:)` can wait for: a `Connection` (ready when a message or
/// end-of-file can be read), a queue (ready when an item can be got) or a `Process` (ready
/// once it has ended).
public protocol Waitable: AnyObject, Sendable {
    /// A descriptor that polls readable when the object is ready, if it has one.
    var _waitDescriptor: Int32? { get }
    /// Whether the object is ready now.
    func _isReady() -> Bool
}

/// Waits until at least one of `objects` is ready, or `timeout` seconds pass (nil: without
/// limit); returns the ready ones (empty on time-out). Python's
/// `multiprocessing.connection.wait`.
///
/// Connections and processes (their `sentinel`) are waited for in `ppoll`; queues have no
/// descriptor and are checked between polls, every 50 µs at first and then at most every millisecond.
/// An empty list returns [] at once (nothing in it can become ready), and a connection or
/// queue closed here is ready (its `recv` or `get` throws at once).
///
/// Inside an `XCTestCase` (whose `wait(for:)` hides this function) write
/// `Multiprocessing.wait(on:timeout:)`.
public func wait(on objects: [any Waitable], timeout: Double? = nil) -> [any Waitable] {
    waitUntilReady(objects, timeout: timeout)
}

/// `wait(on:timeout:)` for objects of one type (say `[Connection]`): returns them typed.
public func wait<W: Waitable>(on objects: [W], timeout: Double? = nil) -> [W] {
    let ready = waitUntilReady(objects.map { $0 as any Waitable }, timeout: timeout)
    return objects.filter { object in ready.contains { $0 === object } }
}

extension Multiprocessing {
    /// `wait(on:timeout:)` (Python's `multiprocessing.connection.wait`).
    public static func wait(on objects: [any Waitable], timeout: Double? = nil) -> [any Waitable] {
        waitUntilReady(objects, timeout: timeout)
    }

    /// `wait(on:timeout:)` for objects of one type.
    public static func wait<W: Waitable>(on objects: [W], timeout: Double? = nil) -> [W] {
        let ready = waitUntilReady(objects.map { $0 as any Waitable }, timeout: timeout)
        return objects.filter { object in ready.contains { $0 === object } }
    }
}

func waitUntilReady(_ objects: [any Waitable], timeout: Double?) -> [any Waitable] {
    // Nothing to wait on can never become ready: without a timeout, ppoll on no descriptor
    // would block for ever.
    if objects.isEmpty { return [] }
    let end = deadline(after: timeout)
    var descriptors: [pollfd] = []
    var owners: [Int] = []
    for (index, object) in objects.enumerated() {
        if let fd = object._waitDescriptor, fd >= 0 {
            descriptors.append(pollfd(fd: fd, events: Int16(POLLIN), revents: 0))
            owners.append(index)
        }
    }
    let pollOnly = owners.count == objects.count
    // The others are asked each round: those without a descriptor, and those whose descriptor
    // is gone (a closed connection: ready, its recv throws at once).
    let polled = Set(owners)
    let asked = objects.indices.filter { !polled.contains($0) }
    var step: UInt64 = 50_000
    while true {
        var ready: [any Waitable] = []
        for index in asked where objects[index]._isReady() {
            ready.append(objects[index])
        }
        let now = monotonicNanoseconds()
        var wait: UInt64 = ready.isEmpty ? (end.map { $0 > now ? $0 - now : 0 } ?? UInt64.max) : 0
        if !pollOnly { wait = min(wait, step) }
        step = min(step * 2, 1_000_000)
        for index in descriptors.indices { descriptors[index].revents = 0 }
        let result = CSystemShims_ppoll(&descriptors, UInt(descriptors.count), wait == UInt64.max ? -1 : Int64(min(wait, 1 << 62)))
        if result > 0 {
            var hit = Set<Int>()
            for (slot, entry) in descriptors.enumerated() where entry.revents != 0 { hit.insert(owners[slot]) }
            // Keep the caller's order.
            let fromPoll = objects.indices.filter { hit.contains($0) }.map { objects[$0] }
            ready = fromPoll + ready
            if !pollOnly {
                ready = objects.filter { object in ready.contains { $0 === object } }
            }
        }
        if !ready.isEmpty { return ready }
        if let end, monotonicNanoseconds() >= end { return [] }
    }
}
