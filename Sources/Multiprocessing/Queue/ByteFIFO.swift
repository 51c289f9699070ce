/// Items in arrival order (the items of served queues and pipes under mpirun, of a manager's
/// queues); removing the oldest is O(1) amortised.
struct ByteFIFO {
    private var items: [[UInt8]] = []
    private var head = 0

    var count: Int { items.count - head }
    var isEmpty: Bool { head >= items.count }

    mutating func append(_ item: [UInt8]) {
        items.append(item)
    }

    /// Puts an item back in front (one taken by a reply that was never read).
    mutating func pushFront(_ item: [UInt8]) {
        if head > 0 {
            head -= 1
            items[head] = item
        } else {
            items.insert(item, at: 0)
        }
    }

    mutating func removeFirst() -> [UInt8]? {
        guard head < items.count else { return nil }
        let item = items[head]
        items[head] = []
        head += 1
        if head >= 64 && head * 2 >= items.count {
            items.removeFirst(head)
            head = 0
        }
        return item
    }
}
