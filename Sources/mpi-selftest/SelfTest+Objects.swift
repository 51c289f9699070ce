#if MPI
import MPI

/// A `Codable` value with nested, variable-size parts.
struct Payload: Codable, Equatable {
    var name: String
    var values: [Double]
    var origin: Int
    var tags: [String: Int]
}

extension SelfTest {
    func objects() throws -> Bool {
        let root = size - 1
        let shared = try communicator.broadcastObject(
            rank == root ? Payload(name: "root", values: [1, 2.5], origin: root, tags: ["a": 1]) : nil, root: root)
        var ok = expect(shared == Payload(name: "root", values: [1, 2.5], origin: root, tags: ["a": 1]), "broadcastObject \(shared)")
        if rank == 0 {
            for _ in 1..<max(size, 1) {
                let (payload, status) = try communicator.receiveObject(Payload.self, from: .any, tag: 60)
                ok = expect(payload.origin == status.source && payload.values.count == status.source, "receiveObject") && ok
                try communicator.sendObject(payload.name.uppercased(), to: status.source, tag: 61)
            }
        } else {
            let payload = Payload(name: "rank\(rank)", values: (0..<rank).map(Double.init), origin: rank, tags: ["r": rank])
            try communicator.sendObject(payload, to: 0, tag: 60)
            let (answer, _) = try communicator.receiveObject(String.self, from: 0, tag: 61)
            ok = expect(answer == "RANK\(rank)", "answer \(answer)") && ok
        }
        return ok
    }
}
#endif
