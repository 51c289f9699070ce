#if canImport(Glibc)
import Glibc
#endif

/// Writes to standard error without buffering.
func printError(_ message: String, newline: Bool = true) {
    var text = message
    if newline { text += "\n" }
    text.withUTF8 { bytes in _ = write(2, bytes.baseAddress, bytes.count) }
}
