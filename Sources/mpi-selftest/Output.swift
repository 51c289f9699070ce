#if MPI
#if canImport(Glibc)
import Glibc
#endif

/// Prints a line to standard output and flushes it, so that mpirun forwards it at once.
func printLine(_ line: String) {
    print(line)
    fflush(nil)
}

/// Writes a line to standard error, unbuffered.
func printError(_ line: String) {
    var text = line + "\n"
    text.withUTF8 { bytes in _ = write(2, bytes.baseAddress, bytes.count) }
}
#endif
