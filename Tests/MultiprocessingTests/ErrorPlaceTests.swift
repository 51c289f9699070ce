import XCTest

@testable import Multiprocessing

/// What the failure messages say of where an input ran: under mpirun a worker process is
/// hosted by a rank, and the message names both (the README: `WorkerDied` "names the input,
/// rank, host, pid and signal").
final class ErrorPlaceTests: XCTestCase {
    func testAWorkerOfARankIsNamedWithItsRank() {
        let died = WorkerDied(pid: 4242, rank: 2, host: "node2", signal: 9, inputIndex: 7)
        XCTAssertEqual(died.description, "worker process 4242 of rank 2 on node2 was killed by signal 9 (SIGKILL) while running input 7")
        let late = TaskTimedOut(inputIndex: 3, seconds: 0.5, pid: 4242, rank: 2, host: "node2")
        XCTAssertEqual(late.description, "input 3 ran longer than its limit of 0.5 s on worker process 4242 of rank 2 on node2")
        let threw = RemoteError(typeName: "App.Boom", message: "boom", inputIndex: 1, pid: 4242, rank: 2, host: "node2")
        XCTAssertEqual(threw.description, "input 1 threw App.Boom: boom (worker process 4242 of rank 2 on node2)")
    }

    func testLocalWorkersAndRanksAloneKeepTheirWording() {
        XCTAssertEqual(
            WorkerDied(pid: 17, host: "vm", exitCode: 3, inputIndex: 0).description,
            "worker process 17 on vm exited with status 3 while running input 0")
        XCTAssertEqual(WorkerDied(rank: 1, host: "node1").description, "worker rank 1 on node1 ended")
        XCTAssertEqual(WorkerDied().description, "a worker ended")
        XCTAssertEqual(
            TaskTimedOut(inputIndex: 0, seconds: 1, pid: 17).description,
            "input 0 ran longer than its limit of 1.0 s on worker process 17")
        XCTAssertEqual(TaskTimedOut(inputIndex: 0, seconds: 1).description, "input 0 ran longer than its limit of 1.0 s on its worker")
        XCTAssertEqual(RemoteError(typeName: "E", message: "m", inputIndex: 2).description, "input 2 threw E: m")
        XCTAssertEqual(
            RemoteError(typeName: "E", message: "m", inputIndex: 2, rank: 3).description, "input 2 threw E: m (worker rank 3)")
    }
}
