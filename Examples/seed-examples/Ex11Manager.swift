// 11. A Manager: a dict and a list shared through a manager process.
//     Python: with Manager() as m: d = m.dict(); l = m.list(range(5)); p = Process(target=f, args=(d, l)) …
import Multiprocessing

struct FillShared: ParallelFunction {
    var dict: DictProxy<String, Double>
    var list: ListProxy<Int>
    func callAsFunction(_: Void) throws {
        try dict.set("1", 1)
        try dict.set("2", 2)
        try dict.set("0.25", 0.25)
        for i in 0..<5 { try list.set(i, try list.get(i) * 10) }
        try list.append(99)
    }
}

func example11(_: ArraySlice<String>) throws {
    let manager = try Manager()
    defer { manager.shutdown() }
    let dict = try manager.dict(String.self, Double.self)
    let list = try manager.list(of: Int.self)
    for i in 0..<5 { try list.append(i) }
    let p = Process(target: FillShared(dict: dict, list: list))
    try p.start()
    try p.join()
    let entries = try dict.snapshot().sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }
    print("{" + entries.joined(separator: ", ") + "}")
    print(try list.snapshot())
}
