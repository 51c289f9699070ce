// Evenly spaced integers (a range's or a stride's) written from their first value and step:
// the same bytes as `encodeArray` of an array of them, computed straight into the message.

extension WireWriter {
    /// Appends what `encodeArray` appends, on a little-endian machine, for an array of the
    /// `count` integers `first`, `first + step`, `first + 2 × step`, … of a `WireRawElement`
    /// integer type `byteWidth` bytes wide (1, 2, 4 or 8): the count (a varint), then each
    /// value's low `byteWidth` bytes, little-endian — computed into the message, with no array
    /// in between. `first` and `step` are the values' bit patterns widened to 64 bits (sign-
    /// or zero-extended: `UInt64(truncatingIfNeeded:)`); the arithmetic wraps, as two's
    /// complement arithmetic of the narrower type does.
    public mutating func writeArithmeticIntegers(first: UInt64, step: UInt64, count: Int, byteWidth: Int) {
        precondition(count >= 0, "writeArithmeticIntegers: a negative count (\(count))")
        precondition([1, 2, 4, 8].contains(byteWidth), "writeArithmeticIntegers: byteWidth must be 1, 2, 4 or 8, not \(byteWidth)")
        writeVarint(UInt64(count))
        guard count > 0 else { return }
        let byteCount = count.multipliedReportingOverflow(by: byteWidth)
        precondition(!byteCount.overflow, "writeArithmeticIntegers: \(count) values of \(byteWidth) bytes overflow Int")
        appendBytes(count: byteCount.partialValue) { raw in
            var value = first
            switch byteWidth {
            case 8:
                for k in 0..<count {
                    raw.storeBytes(of: value.littleEndian, toByteOffset: k &* 8, as: UInt64.self)
                    value &+= step
                }
            case 4:
                for k in 0..<count {
                    raw.storeBytes(of: UInt32(truncatingIfNeeded: value).littleEndian, toByteOffset: k &* 4, as: UInt32.self)
                    value &+= step
                }
            case 2:
                for k in 0..<count {
                    raw.storeBytes(of: UInt16(truncatingIfNeeded: value).littleEndian, toByteOffset: k &* 2, as: UInt16.self)
                    value &+= step
                }
            default:
                for k in 0..<count {
                    raw[k] = UInt8(truncatingIfNeeded: value)
                    value &+= step
                }
            }
        }
    }

    /// Appends `count` bytes that `initialize` writes (it must write all of them), straight
    /// into `bytes`' storage: no zero-filling first, no copy.
    public mutating func appendBytes(count: Int, _ initialize: (UnsafeMutableRawBufferPointer) -> Void) {
        precondition(count >= 0, "appendBytes: a negative count (\(count))")
        guard count > 0 else { return }
        withoutActuallyEscaping(initialize) { initialize in
            bytes.append(contentsOf: _WireFill(count: count, initialize: initialize))
        }
    }
}

/// `count` bytes that `initialize` writes. `Array.append(contentsOf:)` reserves
/// `underestimatedCount` more elements and hands the new space to `_copyContents`, which
/// `initialize` fills in place; were it read through its iterator instead, the iterator
/// yields the same bytes (made in a temporary array), so the result is the same either way.
private struct _WireFill: Sequence {
    let count: Int
    let initialize: (UnsafeMutableRawBufferPointer) -> Void

    var underestimatedCount: Int { count }

    func makeIterator() -> IndexingIterator<[UInt8]> {
        let made = [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            initialize(UnsafeMutableRawBufferPointer(buffer))
            initialized = count
        }
        return made.makeIterator()
    }

    func _copyContents(
        initializing buffer: UnsafeMutableBufferPointer<UInt8>
    ) -> (IndexingIterator<[UInt8]>, UnsafeMutableBufferPointer<UInt8>.Index) {
        guard buffer.count >= count else {
            // Not the room `underestimatedCount` asked for: the iterator's way.
            var iterator = makeIterator()
            var written = 0
            while written < buffer.count, let byte = iterator.next() {
                (buffer.baseAddress! + written).initialize(to: byte)
                written += 1
            }
            return (iterator, written)
        }
        initialize(UnsafeMutableRawBufferPointer(rebasing: UnsafeMutableRawBufferPointer(buffer)[..<count]))
        return ([UInt8]().makeIterator(), count)
    }
}
