/// A `Listener` or `Client` whose peer does not know the shared `authkey` (or does not speak
/// the handshake): Python's `multiprocessing.AuthenticationError`. The connection is closed.
public struct AuthenticationError: Error, CustomStringConvertible, Sendable, Equatable {
    public var message: String

    public init(_ message: String) {
        self.message = message
    }

    public var description: String { message }
}

/// The handshake of a `Listener` and a `Client` that were given an `authkey`, modelled on
/// Python's (`deliver_challenge`, `answer_challenge`; not its wire format): each side sends the other 32 random bytes after
/// `#CHALLENGE#`, the other answers with their HMAC-SHA256 under the key, and the challenger
/// answers `#WELCOME#` or `#FAILURE#`. The listener challenges first, then the client; the
/// key itself never travels. The whole handshake has a deadline and every message is one
/// small frame, read within it: a peer that stops answering, or announces a long message,
/// fails the handshake instead of holding `accept` for ever or making it allocate.
///
/// The deadline (`deadline(seconds:)`): the caller's time limit counted from when the peer
/// connected, at least 1 s (so a client that connects at the end of an `accept(timeout:)` is
/// still let in), or `defaultSeconds` without one.
enum ConnectionAuthentication {
    static let challenge = Array("#CHALLENGE#".utf8)
    static let welcome = Array("#WELCOME#".utf8)
    static let failure = Array("#FAILURE#".utf8)
    /// The longest handshake message either side reads (one small frame of a `Connection`).
    static let longest = Connection.smallPayload
    /// How long a handshake may take when the caller gave no time limit (s).
    static let defaultSeconds = 30.0

    /// The listener's side: challenge, then answer.
    static func server(_ connection: Connection, key: [UInt8], deadline: UInt64) throws {
        try deliver(connection, key: key, deadline: deadline)
        try answer(connection, key: key, deadline: deadline)
    }

    /// The client's side: answer, then challenge.
    static func client(_ connection: Connection, key: [UInt8], deadline: UInt64) throws {
        try answer(connection, key: key, deadline: deadline)
        try deliver(connection, key: key, deadline: deadline)
    }

    private static func deliver(_ connection: Connection, key: [UInt8], deadline: UInt64) throws {
        var generator = SystemRandomNumberGenerator()
        let message = (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) }
        try connection.sendBytes(challenge + message)
        let response = try receive(connection, deadline: deadline, expecting: "the answer to its challenge")
        guard equalInConstantTime(response, SHA256.authenticationCode(key: key, message: message)) else {
            try? connection.sendBytes(failure)
            throw AuthenticationError("the peer's answer to the challenge was wrong: it was given another authkey")
        }
        try connection.sendBytes(welcome)
    }

    private static func answer(_ connection: Connection, key: [UInt8], deadline: UInt64) throws {
        let message = try receive(connection, deadline: deadline, expecting: "a challenge")
        guard message.starts(with: challenge) else {
            throw AuthenticationError("protocol error: expected a challenge, got \(message.prefix(20).count) other bytes")
        }
        try connection.sendBytes(SHA256.authenticationCode(key: key, message: Array(message.dropFirst(challenge.count))))
        let verdict = try receive(connection, deadline: deadline, expecting: "the verdict on its answer")
        guard verdict == welcome else {
            throw AuthenticationError("the peer rejected this side's answer: it was given another authkey")
        }
    }

    /// The next handshake message, within `deadline`. Read as one small frame: a peer that
    /// announces more, or sends part of a frame and stops, fails the handshake in time.
    private static func receive(_ connection: Connection, deadline: UInt64, expecting what: String) throws -> [UInt8] {
        do {
            guard let message = try connection.receiveSmallMessage(before: deadline) else {
                throw AuthenticationError(
                    "the peer did not send \(what) in time: it has another authkey or none, or is not a Client")
            }
            return message
        } catch let error as ConnectionError where error.code == .messageTooLong {
            throw AuthenticationError("protocol error: the peer announced a message longer than \(longest) bytes for \(what)")
        } catch let error as ConnectionError where error.code == .endOfFile {
            throw AuthenticationError("the peer closed the connection instead of sending \(what)")
        }
    }

    /// The handshake's deadline for a call whose time limit is `seconds` (nil: none).
    static func deadline(seconds: Double?) -> UInt64 {
        let limit = max(seconds ?? defaultSeconds, 1)
        return monotonicNanoseconds() &+ UInt64(min(limit, 1e6) * 1e9)
    }

    private static func equalInConstantTime(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for (x, y) in zip(a, b) { difference |= x ^ y }
        return difference == 0
    }
}
