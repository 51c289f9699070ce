// 14. Many processes writing one file: the lines go through a queue to one writer, so they
// never interleave. (The lock variant needs Lock from Synchronization.)
// Options: [file, default a temporary file]
import Foundation
import Multiprocessing

struct LineProducer: ParallelFunction {
    var lines: Queue<String>
    var id: Int
    func callAsFunction(_: Void) throws {
        for n in 0..<5 {
            try lines.put("process \(id) line \(n) " + String(repeating: "x", count: 60))
        }
    }
}

func example14(_ arguments: ArraySlice<String>) throws {
    let path = arguments.first ?? NSTemporaryDirectory() + "seed-lines-\(getpid()).txt"
    let lines = try Queue<String>()
    let producers = (0..<4).map { Multiprocessing.Process(target: LineProducer(lines: lines, id: $0)) }
    for producer in producers { try producer.start() }
    var text = ""
    for _ in 0..<(4 * 5) { text += try lines.get(timeout: 30) + "\n" } // the one writer
    for producer in producers { try producer.join() }
    try text.write(toFile: path, atomically: true, encoding: .utf8)
    let written = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
    let intact = written.allSatisfy { $0.hasSuffix(String(repeating: "x", count: 60)) }
    print("\(written.count) lines written to \(path), all intact: \(intact)")
}
