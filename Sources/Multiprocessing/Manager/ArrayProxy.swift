/// A fixed-length array held by a `Manager` — Python's `Manager().Array(typecode, sequence)`:
/// elements are read and written by index (negative indices count from the end), and its
/// length never changes. For numbers every process reads and writes often, a `SharedArray`
/// (shared memory, no server) is far faster; this one works wherever a manager does,
/// including between the ranks of an mpirun job.
public struct ArrayProxy<Element: Codable & Sendable>: Codable, Sendable {
    /// The server keeps it as a list that only this proxy's operations reach.
    let list: ListProxy<Element>

    /// The element at `index`; throws `ManagerError(.invalidRequest)` when out of range.
    public func get(_ index: Int) throws -> Element { try list.get(index) }

    /// Replaces the element at `index`; throws `ManagerError(.invalidRequest)` when out of range.
    public func set(_ index: Int, _ element: Element) throws { try list.set(index, element) }

    /// The number of elements (Python's `len`).
    public func count() throws -> Int { try list.count() }

    /// A snapshot of every element (Python's `array[:]`): one request.
    public func snapshot() throws -> [Element] { try list.snapshot() }
}
