#if canImport(Glibc)
import Glibc
#endif

/// Length-prefixed frames ([UInt32 length][payload]) on a connected stream socket. A
/// receive waiting for a reply spins, then yields, before it sleeps (`ReadinessWait`).
struct FrameSocket {
    let fd: Int32

    /// Sends a whole frame.
    func send(_ frame: [UInt8]) throws {
        var offset = 0
        while offset < frame.count {
            let n = frame.withUnsafeBytes { raw in
                Glibc.send(fd, raw.baseAddress! + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
            }
            if n < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN { waitFor(Int16(POLLOUT), timeout: 1000); continue }
                throw SystemError("send", errno: errno)
            }
            offset += n
        }
    }

    /// Receives one frame's payload; nil when the peer closed the connection cleanly.
    func receive(spin: Bool = true) throws -> [UInt8]? {
        var header: UInt32 = 0
        let got = try withUnsafeMutableBytes(of: &header) { raw in
            try readExactly(raw, spin: spin)
        }
        guard got else { return nil }
        let length = Int(UInt32(littleEndian: header))
        guard length <= ManagerFrame.maximum else { throw SystemError("receive (frame too large)", errno: EMSGSIZE) }
        var payload = [UInt8](repeating: 0, count: length)
        let complete = try payload.withUnsafeMutableBytes { raw in
            try readExactly(raw, spin: false)
        }
        guard complete || length == 0 else { throw SystemError("receive (connection closed mid-frame)", errno: ECONNRESET) }
        return payload
    }

    private func readExactly(_ buffer: UnsafeMutableRawBufferPointer, spin: Bool) throws -> Bool {
        var offset = 0
        var wait = ReadinessWait()
        while offset < buffer.count {
            let n = recv(fd, buffer.baseAddress! + offset, buffer.count - offset, Int32(MSG_DONTWAIT))
            if n > 0 {
                offset += n
                wait.reset()
                continue
            }
            if n == 0 {
                if offset == 0 { return false }
                throw SystemError("recv (connection closed mid-frame)", errno: ECONNRESET)
            }
            if errno == EINTR { continue }
            guard errno == EAGAIN || errno == EWOULDBLOCK else { throw SystemError("recv", errno: errno) }
            if spin {
                wait.pause(fd)
            } else {
                waitFor(Int16(POLLIN), timeout: -1)
            }
        }
        return true
    }

    private func waitFor(_ events: Int16, timeout: Int32) {
        var entry = pollfd(fd: fd, events: events, revents: 0)
        _ = poll(&entry, 1, timeout)
    }
}
