#if MPI
import MPI

/// Every collective and point-to-point operation of the MPI layer, checked at any world size.
/// Each check runs on every rank; the ranks agree on its outcome with an `allReduce(.min)` and
/// rank 0 prints one line per check.
final class SelfTest {
    let communicator: Communicator
    let rank: Int
    let size: Int
    private(set) var failures = 0

    init(communicator: Communicator) {
        self.communicator = communicator
        rank = communicator.rank
        size = communicator.size
    }

    var left: Int { (rank + size - 1) % size }
    var right: Int { (rank + 1) % size }

    func runAll() throws {
        try check("environment", environment)
        try check("hosts", hosts)
        try check("send/receive", sendReceive)
        try check("send/receive any source", anySource)
        try check("probe", probe)
        try check("isend/irecv", nonBlocking)
        try check("broadcast", broadcast)
        try check("reduce", reduce)
        try check("allreduce", allReduce)
        try check("gather", gather)
        try check("allgather", allGather)
        try check("gatherv", gatherv)
        try check("allgatherv", allGatherv)
        try check("barrier", barrier)
        try check("split", split)
        try check("duplicate", duplicate)
        try check("errors", errors)
        try check("objects", objects)
        if rank == 0 {
            printLine(failures == 0 ? "ALL OK size=\(size)" : "FAILED \(failures) checks size=\(size)")
        }
    }

    private func check(_ name: String, _ body: () throws -> Bool) throws {
        var ok: Bool
        do {
            ok = try body()
        } catch {
            printError("rank \(rank): \(name): \(error)")
            ok = false
        }
        let everywhere = try communicator.allReduce(Int32(ok ? 1 : 0), .min)
        if rank == 0 { printLine(everywhere == 1 ? "\(name) ok" : "\(name) FAILED") }
        if everywhere != 1 { failures += 1 }
    }

    /// Reports a mismatch on standard error and returns whether `condition` holds.
    func expect(_ condition: Bool, _ what: @autoclosure () -> String) -> Bool {
        if !condition { printError("rank \(rank): mismatch: \(what())") }
        return condition
    }

    // MARK: Checks

    func environment() throws -> Bool {
        var ok = expect(MPIEnvironment.isInitialized, "isInitialized")
        ok = expect(!MPIEnvironment.isFinalized, "isFinalized") && ok
        let level = try MPIEnvironment.threadLevel
        ok = expect(level >= .funneled, "thread level \(level) below funneled") && ok
        ok = expect(try MPIEnvironment.libraryVersion.contains("MPI"), "libraryVersion") && ok
        ok = expect(try !MPIEnvironment.processorName.isEmpty, "processorName empty") && ok
        let t0 = MPIEnvironment.wtime
        ok = expect(MPIEnvironment.wtime >= t0 && MPIEnvironment.wtick > 0, "wtime") && ok
        ok = expect(size >= 1 && rank >= 0 && rank < size, "rank \(rank) of \(size)") && ok
        return ok
    }

    func hosts() throws -> Bool {
        let name = try MPIEnvironment.processorName
        let names = try communicator.allGatherv(Array(name.utf8))
        if rank == 0 {
            for (r, bytes) in names.enumerated() {
                printLine("rank \(r) host \(String(decoding: bytes, as: UTF8.self))")
            }
        }
        return expect(names.count == size && names[rank] == Array(name.utf8), "host names")
    }

    func sendReceive() throws -> Bool {
        // A ring: non-blocking sends (a rank may be its own neighbour), blocking receives.
        let array = try communicator.isend((0..<5).map { rank * 100 + $0 }, to: right, tag: 1)
        let value = try communicator.isend(Double(rank) + 0.5, to: right, tag: 2)
        let pair = (UInt32(rank), UInt16(7))
        let raw = try withUnsafeBytes(of: pair) { try communicator.isend($0, to: right, tag: 3) }

        var received = [Int](repeating: -1, count: 5)
        let status = try communicator.receive(into: &received, from: .rank(left), tag: 1)
        var ok = expect(received == (0..<5).map { left * 100 + $0 }, "array \(received)")
        ok = expect(status.source == left && status.tag == 1, "status \(status)") && ok
        ok = expect(try status.count(of: Int.self) == 5, "count") && ok

        let double = try communicator.receive(Double.self, from: .rank(left), tag: 2)
        ok = expect(double == Double(left) + 0.5, "single value \(double)") && ok

        var bytes = (UInt32(0), UInt16(0))
        let rawStatus = try withUnsafeMutableBytes(of: &bytes) { try communicator.receive(into: $0, from: .rank(left), tag: 3) }
        ok = expect(bytes.0 == UInt32(left) && bytes.1 == 7, "raw bytes \(bytes)") && ok
        ok = expect(try rawStatus.byteCount == MemoryLayout.size(ofValue: pair), "byte count") && ok
        try Request.waitAll([array, value, raw])
        return ok
    }

    func anySource() throws -> Bool {
        // Blocking sends to rank 0, which answers each sender found with MPI_ANY_SOURCE.
        var ok = true
        if rank == 0 {
            var seen = Set<Int>()
            for _ in 1..<max(size, 1) {
                var one = [Int32](repeating: 0, count: 1)
                let status = try communicator.receive(into: &one, from: .any, tag: 10)
                ok = expect(Int(one[0]) == status.source * 3, "value from \(status.source)") && ok
                seen.insert(status.source)
                try communicator.send(one[0] * 2, to: status.source, tag: 11)
            }
            ok = expect(seen == Set(1..<max(size, 1)), "sources \(seen.sorted())") && ok
        } else {
            try communicator.send(Int32(rank * 3), to: 0, tag: 10)
            let answer = try communicator.receive(Int32.self, from: 0, tag: .value(11))
            ok = expect(answer == Int32(rank * 6), "answer \(answer)") && ok
        }
        return ok
    }

    func probe() throws -> Bool {
        // Every rank (rank 0 too) sends rank + 1 bytes to rank 0; rank 0 sizes them by probing.
        let request = try communicator.isend([UInt8](repeating: UInt8(rank), count: rank + 1), to: 0, tag: 20)
        var ok = true
        if rank == 0 {
            var seen = Set<Int>()
            for _ in 0..<size {
                let status = try communicator.probe(from: .any, tag: 20)
                let count = try status.count(of: UInt8.self)
                ok = expect(count == status.source + 1, "probed count \(count) from \(status.source)") && ok
                let (elements, received) = try communicator.receiveArray(of: UInt8.self, from: .rank(status.source), tag: 20)
                ok = expect(elements == [UInt8](repeating: UInt8(status.source), count: status.source + 1), "elements") && ok
                ok = expect(received.source == status.source, "receiveArray source") && ok
                seen.insert(status.source)
            }
            ok = expect(seen.count == size, "probe sources") && ok
            ok = expect(try communicator.iprobe(from: .any, tag: 20) == nil, "iprobe after all received") && ok

            let toSelf = try communicator.isend([1, 2, 3] as [Int64], to: 0, tag: 21)
            let deadline = MPIEnvironment.wtime + 10
            var found: Status? = nil
            while found == nil, MPIEnvironment.wtime < deadline {
                found = try communicator.iprobe(from: .any, tag: 21)
            }
            ok = expect(try found?.count(of: Int64.self) == 3, "iprobe found") && ok
            let (bytes, _) = try communicator.receiveBytes(from: 0, tag: 21)
            ok = expect(bytes.count == 24 && bytes[8] == 2, "receiveBytes") && ok
            try toSelf.wait()
        }
        try request.wait()
        return ok
    }

    func nonBlocking() throws -> Bool {
        let receive = try communicator.irecv(Float.self, capacity: 4, from: .rank(left), tag: 30)
        let send = try communicator.isend([Float(rank), 1.5, -2], to: right, tag: 30)
        var result = try receive.test()
        let deadline = MPIEnvironment.wtime + 10
        while result == nil, MPIEnvironment.wtime < deadline { result = try receive.test() }
        try send.wait()
        guard let (elements, status) = result else { return expect(false, "irecv never completed") }
        var ok = expect(elements == [Float(left), 1.5, -2], "irecv elements \(elements)")
        ok = expect(status.source == left && receive.request.isComplete, "irecv status") && ok
        let again = try receive.wait()
        ok = expect(again.elements == elements, "wait after test") && ok
        return ok
    }

    func broadcast() throws -> Bool {
        let root = size - 1
        var values = rank == root ? [4, 8, 15, 16] : [0, 0, 0, 0]
        try communicator.broadcast(&values, root: root)
        var ok = expect(values == [4, 8, 15, 16], "broadcast array \(values)")
        var value = rank == 0 ? 2.75 : 0
        try communicator.broadcast(&value, root: 0)
        ok = expect(value == 2.75, "broadcast value \(value)") && ok
        var bytes: [UInt8] = rank == root ? [1, 2, 3] : [0, 0, 0]
        try bytes.withUnsafeMutableBytes { try communicator.broadcast($0, root: root) }
        ok = expect(bytes == [1, 2, 3], "broadcast bytes") && ok
        return ok
    }

    func reduce() throws -> Bool {
        let sum = try communicator.reduce(rank + 1, .sum, root: 0)
        let maxima = try communicator.reduce([Double(rank), -Double(rank)], .max, root: size - 1)
        var ok = expect(rank == 0 ? sum == size * (size + 1) / 2 : sum == nil, "reduce sum \(String(describing: sum))")
        ok = expect(rank == size - 1 ? maxima == [Double(size - 1), 0] : maxima == nil, "reduce max") && ok
        return ok
    }

    func allReduce() throws -> Bool {
        var ok = expect(try communicator.allReduce(rank + 1, .sum) == size * (size + 1) / 2, "sum")
        let factorial = (1...size).reduce(1.0) { $0 * Double($1) }
        ok = expect(try communicator.allReduce(Double(rank + 1), .product) == factorial, "product") && ok
        ok = expect(try communicator.allReduce([Int32(rank), Int32(-rank)], .min) == [0, Int32(1 - size)], "min") && ok
        ok = expect(try communicator.allReduce([UInt64(rank), 7], .max) == [UInt64(size - 1), 7], "max") && ok
        ok = expect(try communicator.allReduce(UInt8(1) << (rank % 8), .bitwiseOr) == (0..<min(size, 8)).reduce(UInt8(0)) { $0 | (1 << $1) }, "bor") && ok
        ok = expect(try communicator.allReduce(Int16(rank == 0 ? 0 : 1), .logicalAnd) == 0, "land") && ok
        ok = expect(try communicator.allReduce([Float](), .sum).isEmpty, "empty") && ok
        return ok
    }

    func gather() throws -> Bool {
        let gathered = try communicator.gather([rank, rank * rank], root: 0)
        let expected = (0..<size).flatMap { [$0, $0 * $0] }
        var ok = expect(rank == 0 ? gathered == expected : gathered == nil, "gather array")
        let single = try communicator.gather(Int8(rank), root: size - 1)
        ok = expect(rank == size - 1 ? single == (0..<size).map { Int8($0) } : single == nil, "gather value") && ok
        return ok
    }

    func allGather() throws -> Bool {
        var ok = expect(try communicator.allGather(UInt16(rank * 2)) == (0..<size).map { UInt16($0 * 2) }, "allgather value")
        ok = expect(try communicator.allGather([Double(rank), 1]) == (0..<size).flatMap { [Double($0), 1] }, "allgather array") && ok
        return ok
    }

    func gatherv() throws -> Bool {
        let gathered = try communicator.gatherv([Int](repeating: rank, count: rank), root: 0)
        let expected = (0..<size).map { [Int](repeating: $0, count: $0) }
        return expect(rank == 0 ? gathered == expected : gathered == nil, "gatherv \(String(describing: gathered))")
    }

    func allGatherv() throws -> Bool {
        let gathered = try communicator.allGatherv([UInt32](repeating: UInt32(rank), count: size - rank))
        let expected = (0..<size).map { [UInt32](repeating: UInt32($0), count: size - $0) }
        return expect(gathered == expected, "allgatherv \(gathered)")
    }

    func barrier() throws -> Bool {
        let start = MPIEnvironment.wtime
        try communicator.barrier()
        return expect(MPIEnvironment.wtime >= start, "wtime after barrier")
    }

    func split() throws -> Bool {
        // Even and odd ranks, each ordered by descending world rank.
        guard let parity = try communicator.split(color: rank % 2, key: -rank) else {
            return expect(false, "split returned nil for a colour")
        }
        let members = (0..<size).filter { $0 % 2 == rank % 2 }
        var ok = expect(parity.size == members.count, "split size \(parity.size)")
        ok = expect(parity.rank == members.reversed().firstIndex(of: rank), "split rank \(parity.rank)") && ok
        ok = expect(try parity.allReduce(rank, .sum) == members.reduce(0, +), "split allreduce") && ok
        try parity.free()

        let withoutZero = try communicator.split(color: rank == 0 ? nil : 1)
        ok = expect((withoutZero == nil) == (rank == 0), "split nil colour") && ok
        if let withoutZero {
            ok = expect(withoutZero.size == size - 1 && withoutZero.rank == rank - 1, "split without 0") && ok
            try withoutZero.free()
        }
        return ok
    }

    func duplicate() throws -> Bool {
        let copy = try communicator.duplicate()
        defer { try? copy.free() }
        var ok = expect(copy != communicator && copy.size == size && copy.rank == rank, "duplicate shape")
        // A message on the copy is not seen on the original.
        let request = try copy.isend(Int32(rank), to: right, tag: 40)
        ok = expect(try copy.receive(Int32.self, from: .rank(left), tag: 40) == Int32(left), "duplicate message") && ok
        try request.wait()
        ok = expect(try communicator.iprobe(from: .any, tag: 40) == nil, "no message on original") && ok
        try copy.barrier()
        return ok
    }

    func errors() throws -> Bool {
        var ok = true
        do {
            try communicator.send(1, to: size + 5, tag: 50)
            ok = expect(false, "send to rank \(size + 5) did not throw")
        } catch {
            ok = expect(error.function == "MPI_Send" && !error.message.isEmpty, "error \(error)") && ok
        }
        // A message longer than the buffer: MPI_ERR_TRUNCATE, and the message is consumed.
        let request = try communicator.isend([1, 2, 3, 4] as [Int], to: rank, tag: 51)
        var small = [Int](repeating: 0, count: 2)
        do {
            try communicator.receive(into: &small, from: .rank(rank), tag: 51)
            ok = expect(false, "truncating receive did not throw")
        } catch {
            ok = expect(error.function == "MPI_Recv", "truncate error \(error)") && ok
        }
        try request.wait()
        do {
            var value = 0
            try communicator.broadcast(&value, root: size)
            ok = expect(false, "broadcast from a bad root did not throw")
        } catch {
            ok = expect(error.function == "MPI_Bcast", "bad root error \(error)") && ok
        }
        return ok
    }
}
#endif
