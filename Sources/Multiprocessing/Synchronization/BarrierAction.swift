/// What a `Barrier` runs once per pass, in the last party to arrive, before any party goes on:
/// Python's `Barrier(parties, action)`. A value, so that it reaches every process that uses
/// the barrier: its stored properties are its parameters, like a `ParallelFunction`'s, and its
/// type must be `internal` or `public` (a worker finds it by name).
public protocol BarrierAction: Codable, Sendable {
    /// Runs in whichever process arrived last. Throwing breaks the barrier: every party gets
    /// `BrokenBarrierError`.
    func callAsFunction() throws
}
