#if canImport(Glibc)
import Glibc
#endif

/// Length-prefixed frames ([UInt32 length][payload]) on a connected stream socket, one per
/// connection end. Receiving reads whatever the socket holds into a buffer, so a small
/// frame costs one `recv`, not two. A receive waiting for a reply spins, then yields,
/// before it sleeps (`ReadinessWait`). Not thread-safe: its owner serialises use.
///
/// The manager's server uses it without ever waiting: `readAvailable()` (one non-blocking
/// read), `takeFrame()` (a whole buffered frame or nil) and `queue(_:)`/`flush()` (replies
/// written as far as the socket takes them, the rest kept for the next `POLLOUT`). A frame
/// announced larger than `frameLimit` is refused before any buffer is sized for it.
final class FrameSocket {
    let fd: Int32
    /// The largest payload accepted; a larger announcement fails the read with `EMSGSIZE`.
    var frameLimit = ManagerFrame.maximum
    private var buffer = [UInt8](repeating: 0, count: 4096)
    /// Reply bytes not yet sent (`queue`/`flush`): `output[outputSent...]`.
    private var output: [UInt8] = []
    private var outputSent = 0
    /// Buffered bytes not yet returned: `buffer[start..<end]`.
    private var start = 0
    private var end = 0

    init(fd: Int32) { self.fd = fd }

    /// Whether a whole frame is already buffered (the next `receive` will not read).
    var hasBufferedFrame: Bool { bufferedFrameLength() != nil }

    /// Sends a whole frame; with a `deadline` (monotonic nanoseconds), throws `TimedOut` if the
    /// peer has not taken it all by then (the frame may be cut: drop the connection).
    func send(_ frame: [UInt8], deadline: UInt64? = nil) throws {
        var offset = 0
        let flags = Int32(MSG_NOSIGNAL) | (deadline == nil ? 0 : Int32(MSG_DONTWAIT))
        while offset < frame.count {
            let n = frame.withUnsafeBytes { raw in
                Glibc.send(fd, raw.baseAddress! + offset, raw.count - offset, flags)
            }
            if n < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN {
                    var sleep: Int64 = 1_000_000_000
                    if let deadline {
                        let now = monotonicNanoseconds()
                        if now >= deadline { throw TimedOut() }
                        sleep = min(sleep, Int64(deadline - now))
                    }
                    _ = pollOnce(fd, events: Int16(POLLOUT), timeoutNanoseconds: sleep)
                    continue
                }
                throw SystemError("send", errno: errno)
            }
            offset += n
        }
    }

    /// Receives one frame's payload; nil when the peer closed the connection cleanly
    /// between frames. `spin`: wait awake for a while (a reply expected within
    /// microseconds); otherwise sleep in `poll` at once. With a `deadline` (monotonic
    /// nanoseconds), throws `TimedOut` if no whole frame came by then.
    func receive(spin: Bool = true, deadline: UInt64? = nil) throws -> [UInt8]? {
        var wait = ReadinessWait()
        while true {
            if let payload = takeFrame() { return payload }
            do {
                if try fill() { wait.reset(); continue }
            } catch is PeerClosed {
                return nil
            }
            var sleep: Int64 = -1
            if let deadline {
                let now = monotonicNanoseconds()
                if now >= deadline { throw TimedOut() }
                sleep = Int64(deadline - now)
            }
            if spin {
                wait.pause(fd, sleepNanoseconds: sleep)
            } else {
                _ = pollOnce(fd, events: Int16(POLLIN), timeoutNanoseconds: sleep)
            }
        }
    }

    /// After a `receive` timed out: stops the peer from sending more (its further sends fail
    /// with `EPIPE`, so it knows this end did not get them), then returns a whole frame that
    /// arrived before that, if one did.
    func stopReceiving() -> [UInt8]? {
        shutdown(fd, Int32(SHUT_RD))
        while true {
            if let payload = takeFrame() { return payload }
            guard (try? fill()) == true else { return nil }
        }
    }

    /// No frame came, or could be sent, before the deadline.
    struct TimedOut: Error {}

    /// The next whole buffered frame's payload, or nil (never reads the socket).
    func takeFrame() -> [UInt8]? {
        guard let length = bufferedFrameLength() else { return nil }
        let payload = Array(buffer[(start + 4)..<(start + 4 + length)])
        start += 4 + length
        if start == end {
            start = 0
            end = 0
            if buffer.count > 1 << 20 { buffer = [UInt8](repeating: 0, count: 4096) }
        }
        return payload
    }

    /// One non-blocking read into the buffer (call it only when `takeFrame()` gave nil).
    /// Throws when the peer closed the connection (`ECONNRESET`; a clean close between
    /// frames too), on an error, and for a frame announced larger than `frameLimit`.
    func readAvailable() throws {
        do {
            _ = try fill()
        } catch is PeerClosed {
            throw SystemError("recv (the peer closed the connection)", errno: ECONNRESET)
        }
    }

    /// Whether queued reply bytes wait for the socket to take them.
    var hasPendingOutput: Bool { outputSent < output.count }

    /// Queues `frame` and sends what the socket takes now, without waiting.
    func queue(_ frame: [UInt8]) throws {
        if hasPendingOutput { output += frame } else { output = frame; outputSent = 0 }
        try flush()
    }

    /// Sends queued bytes as far as the socket takes them, without waiting.
    func flush() throws {
        while outputSent < output.count {
            let n = output.withUnsafeBytes { raw in
                Glibc.send(fd, raw.baseAddress! + outputSent, raw.count - outputSent, Int32(MSG_NOSIGNAL | MSG_DONTWAIT))
            }
            if n < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN || errno == EWOULDBLOCK { return }
                throw SystemError("send", errno: errno)
            }
            outputSent += n
        }
        output = []
        outputSent = 0
    }

    /// The payload length of the frame at `start` when all of it is buffered.
    private func bufferedFrameLength() -> Int? {
        guard end - start >= 4 else { return nil }
        let length = buffer.withUnsafeBytes { Int(UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: start, as: UInt32.self))) }
        return end - start - 4 >= length ? length : nil
    }

    /// One non-blocking read into the buffer: true if bytes arrived, false if none were
    /// ready. End-of-file throws `PeerClosed` between frames, `ECONNRESET` mid-frame.
    private func fill() throws -> Bool {
        if start > 0 && start == end { start = 0; end = 0 }
        // Room for at least the announced frame (or a header) after the buffered bytes.
        var needed = 4
        if end - start >= 4 {
            let length = buffer.withUnsafeBytes { Int(UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: start, as: UInt32.self))) }
            guard length <= frameLimit else { throw SystemError("receive (a frame of \(length) bytes, above \(frameLimit))", errno: EMSGSIZE) }
            needed = 4 + length
        }
        if start + needed > buffer.count {
            if start > 0 {
                buffer.withUnsafeMutableBytes { raw in
                    raw.baseAddress!.copyMemory(from: raw.baseAddress! + start, byteCount: end - start)
                }
                end -= start
                start = 0
            }
            if needed > buffer.count { buffer += [UInt8](repeating: 0, count: needed - buffer.count) }
        }
        while true {
            let n = buffer.withUnsafeMutableBytes { raw in
                recv(fd, raw.baseAddress! + end, raw.count - end, Int32(MSG_DONTWAIT))
            }
            if n > 0 {
                end += n
                return true
            }
            if n == 0 {
                if start == end { throw PeerClosed() }
                throw SystemError("recv (connection closed mid-frame)", errno: ECONNRESET)
            }
            if errno == EINTR { continue }
            guard errno == EAGAIN || errno == EWOULDBLOCK else { throw SystemError("recv", errno: errno) }
            return false
        }
    }

    /// The peer closed the connection between frames.
    private struct PeerClosed: Error {}
}
