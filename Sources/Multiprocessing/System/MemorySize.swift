import CSystemShims

/// The bytes this machine can give a process at most: its memory and swap (`sysinfo`). An
/// allocation larger than that cannot succeed (Linux refuses it even with overcommit), and
/// Swift ends the program when an allocation fails: a call checks against this first.
/// `Int.max` when `sysinfo` fails.
func machineMemoryBytes() -> Int {
    let bytes = CSystemShims_memory_and_swap_bytes()
    return bytes == 0 ? Int.max : Int(clamping: bytes)
}
