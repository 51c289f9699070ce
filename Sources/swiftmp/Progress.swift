#if canImport(Glibc)
import Glibc
#endif

/// A progress bar on standard error, shown only when standard error is a terminal, output
/// is not JSON, and the run has lasted more than a second.
final class ProgressBar {
    private let total: Int
    private let label: String
    private let enabled: Bool
    private let start = Measure.now()
    private var done = 0
    private var shown = false
    private var lastDraw = 0.0

    init(total: Int, label: String, json: Bool) {
        self.total = max(total, 1)
        self.label = label
        self.enabled = !json && isatty(2) != 0
    }

    func advance(by count: Int = 1) {
        done += count
        guard enabled else { return }
        let now = Measure.now()
        guard now - start > 1.0, now - lastDraw > 0.1 || done >= total else { return }
        lastDraw = now
        shown = true
        let width = 30
        let filled = min(width, width * done / total)
        let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
        printError("\r\(label) [\(bar)] \(100 * done / total)%", newline: false)
    }

    func finish() {
        if shown { printError("\r\u{1B}[2K", newline: false) }
    }
}

/// Writes to standard error without buffering.
func printError(_ message: String, newline: Bool = true) {
    var text = message
    if newline { text += "\n" }
    text.withUTF8 { bytes in _ = write(2, bytes.baseAddress, bytes.count) }
}
