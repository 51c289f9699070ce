// 13. Image processing: a pool converts every image in a folder to greyscale and saves
// processed_<name>. The images are generated here (binary PPM in, PGM out).
// Options: [folder, default a new temporary folder]
import Foundation
import Multiprocessing

struct ConvertToGrey: ParallelFunction {
    var folder: String
    func callAsFunction(_ name: String) throws -> String {
        let data = try Data(contentsOf: URL(fileURLWithPath: folder + "/" + name))
        // "P6\n<w> <h>\n255\n" then RGB bytes.
        let parts = data.prefix(64).split(separator: UInt8(ascii: "\n"), maxSplits: 3)
        let size = String(decoding: parts[1], as: UTF8.self).split(separator: " ").compactMap { Int($0) }
        let (width, height) = (size[0], size[1])
        let pixels = data.suffix(width * height * 3)
        var grey = [UInt8](repeating: 0, count: width * height)
        pixels.withUnsafeBytes { rgb in
            for i in 0..<(width * height) {
                let r = Int(rgb[3 * i]), g = Int(rgb[3 * i + 1]), b = Int(rgb[3 * i + 2])
                grey[i] = UInt8((299 * r + 587 * g + 114 * b) / 1000)
            }
        }
        let output = "processed_" + name.replacingOccurrences(of: ".ppm", with: ".pgm")
        var file = Data("P5\n\(width) \(height)\n255\n".utf8)
        file.append(contentsOf: grey)
        try file.write(to: URL(fileURLWithPath: folder + "/" + output))
        return output
    }
}

func example13(_ arguments: ArraySlice<String>) throws {
    let folder = arguments.first ?? NSTemporaryDirectory() + "seed-images-\(getpid())"
    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    let names = (0..<6).map { "image\($0).ppm" }
    for (index, name) in names.enumerated() {
        let width = 64, height = 48
        var file = Data("P6\n\(width) \(height)\n255\n".utf8)
        for y in 0..<height {
            for x in 0..<width { file.append(contentsOf: [UInt8(x * 4), UInt8(y * 5), UInt8(index * 40)]) }
        }
        try file.write(to: URL(fileURLWithPath: folder + "/" + name))
    }
    let outputs = try Pool.with(processes: 4) { pool in try pool.map(ConvertToGrey(folder: folder), names) }
    for output in outputs { print(output) }
    print("\(outputs.count) images converted in \(folder)")
}
