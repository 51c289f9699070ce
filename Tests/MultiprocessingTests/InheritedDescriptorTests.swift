import XCTest

@testable import Multiprocessing

#if canImport(Glibc)
import Glibc
#endif

/// Uses a manager dictionary from a task whose function value also holds shared memory
/// received after the worker started (a `Condition`: two segments), and lists the worker's
/// descriptors.
struct SetThroughManager: ParallelFunction {
    var condition: Condition?
    var dictionary: DictProxy<Int, Int32>
    func callAsFunction(_ key: Int) throws -> Int32 {
        try dictionary.set(key, getpid())
        return try dictionary.get(key) ?? -1
    }
}

/// A forked child inherits its parent's objects but not their descriptors: it closes those
/// at its start, and their numbers are soon other descriptors'. An inherited object that the
/// child drops (a replaced manager connection, fork server, process state, shared region)
/// must close nothing there.
final class InheritedDescriptorTests: TimeLimitedTestCase {
    /// The fault probe's case: a `.fork` worker opened its own connection to a manager its
    /// parent was connected to, and dropping the inherited connection closed the number the
    /// new one had just taken — every manager call of that worker then failed with "send
    /// failed: Bad file descriptor".
    func testAForkedWorkersManagerConnectionSurvivesTheInheritedOne() throws {
        let manager = try Manager()
        defer { manager.shutdown() }
        let pool = try Pool(processes: 2, startMethod: .fork)
        defer { pool.terminate() }
        // Made after the workers started: their memory reaches them as descriptors.
        let dictionary = try manager.dict(Int.self, Int32.self)
        let condition = try Condition()
        for (index, holdsCondition) in [true, false, true, true].enumerated() {
            let function = SetThroughManager(condition: holdsCondition ? condition : nil, dictionary: dictionary)
            let pid = try pool.apply(function, index)
            XCTAssertGreaterThan(pid, 0, "task \(index)")
            XCTAssertNotEqual(pid, getpid())
        }
    }

    /// The same, made certain: a forked child whose inherited connection's number names
    /// another of its descriptors opens its own connection; dropping the inherited one must
    /// leave that descriptor open (it was closed before).
    func testAnInheritedManagerConnectionClosesNoDescriptorOfTheChild() throws {
        let manager = try Manager()
        defer { manager.shutdown() }
        // Held by this process's connection registry only (as a worker inherits it).
        let number = try ManagerConnection.to(manager.address).descriptorForTests
        let outcome = inForkedChildReusing(number) {
            (try? ManagerConnection.to(manager.address)) == nil ? 2 : 1
        }
        XCTAssertEqual(outcome, 1, outcome == 3 ? "dropping the inherited connection closed the child's descriptor" : "no new connection")
    }

    /// A shared region inherited by a forked child and dropped there closes nothing: a
    /// descriptor the child opened under the same number stays open.
    func testARegionInheritedByAForkedChildClosesNoDescriptorOfIts() throws {
        var region: SharedRegion? = try SharedRegion(size: 4096, name: "swiftmp-test")
        let number = region?.descriptor ?? -1
        let outcome = inForkedChildReusing(number) {
            region = nil // the parent's object, inherited, goes here
            return 1
        }
        XCTAssertEqual(outcome, 1, outcome == 3 ? "the inherited region closed the child's descriptor" : "setup: \(outcome)")
    }

    /// Forks a child that does what a child's start does — the inherited descriptor `number`
    /// closes and the number is reused (/dev/null) — then runs `body`; returns `body`'s
    /// outcome, or 3 if `number` was closed meanwhile.
    private func inForkedChildReusing(_ number: Int32, _ body: () -> UInt8) -> UInt8 {
        var ends: [Int32] = [0, 0]
        XCTAssertEqual(pipe(&ends), 0)
        defer {
            close(ends[0])
            close(ends[1])
        }
        let pid = fork()
        if pid == 0 {
            let null = open("/dev/null", O_RDONLY)
            dup2(null, number)
            close(null)
            var outcome = body()
            if fcntl(number, F_GETFD) < 0 { outcome = 3 }
            _ = write(ends[1], &outcome, 1)
            _exit(0)
        }
        var status: Int32 = 0
        XCTAssertEqual(waitpid(pid, &status, 0), pid)
        var outcome: UInt8 = 0
        XCTAssertEqual(read(ends[0], &outcome, 1), 1)
        return outcome
    }
}
