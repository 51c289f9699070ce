#if canImport(Glibc)
import Glibc
#endif

/// Descriptors that travel beside a message: while a value is encoded, every shared segment
/// it mentions is recorded; while a message is decoded, a segment not yet mapped here is
/// looked up among the descriptors that arrived with it. Per thread, for the duration of
/// one encode or decode.
enum AttachmentContext {
    final class Collector {
        var segments: [SegmentID: SegmentStorage] = [:]
        /// Plain descriptors (connections) the value mentions, or nil when this encoding
        /// cannot carry them (a pool's messages): only a `Process` start passes them.
        var descriptors: [SegmentID: Int32]?
    }

    final class Source {
        let fetch: (SegmentID) throws -> Int32?
        init(_ fetch: @escaping (SegmentID) throws -> Int32?) { self.fetch = fetch }
    }

    private final class Frame {
        var collector: Collector?
        var source: Source?
        /// What is being encoded when only plain values may travel (a queue item, a pipe
        /// message, a manager value): a shared segment mentioned there is refused.
        var plainValuesOnly: String?
    }

    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        return key
    }()

    private static var current: Frame? {
        guard let raw = pthread_getspecific(key) else { return nil }
        return Unmanaged<Frame>.fromOpaque(raw).takeUnretainedValue()
    }

    private static func with<T>(_ frame: Frame, _ body: () throws -> T) rethrows -> T {
        let previous = pthread_getspecific(key)
        let retained = Unmanaged.passRetained(frame)
        pthread_setspecific(key, retained.toOpaque())
        defer {
            pthread_setspecific(key, previous)
            retained.release()
        }
        return try body()
    }

    /// Runs `body` (an encode) and returns what it produced with the segments it mentioned.
    static func collecting<T>(_ body: () throws -> T) rethrows -> (T, [SegmentStorage]) {
        let frame = Frame()
        let collector = Collector()
        frame.collector = collector
        let value = try with(frame, body)
        return (value, Array(collector.segments.values))
    }

    /// Runs `body` (a decode) with `fetch` answering for segments not mapped here.
    static func receiving<T>(_ fetch: @escaping (SegmentID) throws -> Int32?, _ body: () throws -> T) rethrows -> T {
        try Receiver(fetch).run(body)
    }

    /// A decode context made once and entered for each decode: what `receiving` makes per
    /// call (a worker makes one and enters it for every chunk it runs).
    final class Receiver {
        private let frame = Frame()

        init(_ fetch: @escaping (SegmentID) throws -> Int32?) {
            frame.source = Source(fetch)
        }

        /// Runs `body` (a decode, or a chunk's run) with this receiver's `fetch` answering for
        /// segments not mapped here.
        func run<T>(_ body: () throws -> T) rethrows -> T {
            try AttachmentContext.with(frame, body)
        }
    }

    /// Runs `body` (an encode) and returns what it produced with the segments and the plain
    /// descriptors it mentioned (a `Process` target: connections may travel too).
    static func collectingWithDescriptors<T>(_ body: () throws -> T) rethrows
        -> (T, [SegmentStorage], [(SegmentID, Int32)])
    {
        let frame = Frame()
        let collector = Collector()
        collector.descriptors = [:]
        frame.collector = collector
        let value = try with(frame, body)
        return (value, Array(collector.segments.values), collector.descriptors!.map { ($0.key, $0.value) })
    }

    /// Runs `body` (the encode of a value for `channel`: "a queue", "a connection", "a
    /// manager") so that a shared object it mentions throws instead of being encoded: its
    /// memory cannot travel that way, and the receiver could not use it.
    static func plainValuesOnly<T>(for channel: String, _ body: () throws -> T) rethrows -> T {
        let frame = Frame()
        frame.plainValuesOnly = channel
        return try with(frame, body)
    }

    /// Throws if the current encode admits only plain values (see `plainValuesOnly`).
    static func checkSegmentMayTravel() throws {
        guard let channel = current?.plainValuesOnly else { return }
        throw PoolError(
            .encoding,
            """
            a shared object (lock, event, semaphore, condition, barrier, queue, shared value or array) cannot \
            travel through \(channel): only plain values do; store it in the Process target or pool function \
            that needs it (its memory travels with the process or the task)
            """)
    }

    /// Records a plain descriptor (a connection's socket) the current encode mentions;
    /// false when the encoding cannot carry descriptors.
    static func recordDescriptor(_ fd: Int32, id: SegmentID) -> Bool {
        guard let collector = current?.collector, collector.descriptors != nil else { return false }
        collector.descriptors![id] = fd
        return true
    }

    /// Whether the current encode is a `Process` start (the only one that carries plain
    /// descriptors): its child is a local process.
    static var isEncodingForChildProcess: Bool {
        current?.collector?.descriptors != nil
    }

    static func record(_ storage: SegmentStorage) {
        current?.collector?.segments[storage.id] = storage
    }

    static func descriptor(for id: SegmentID) throws -> Int32? {
        try current?.source?.fetch(id)
    }
}
