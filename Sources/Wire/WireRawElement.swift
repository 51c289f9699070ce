/// A plain number type whose arrays travel as raw bytes: a length and one `memcpy`.
///
/// The list is closed on purpose: only fixed-width integers and IEEE floating-point types,
/// for which every bit pattern is a valid value. `Bool`, enums and pointers are excluded,
/// because bytes from another process copied into them could be invalid values
/// (undefined behaviour). Do not conform other types.
public protocol WireRawElement: BitwiseCopyable, Codable, Sendable {}

extension Int: WireRawElement {}
extension Int8: WireRawElement {}
extension Int16: WireRawElement {}
extension Int32: WireRawElement {}
extension Int64: WireRawElement {}
extension UInt: WireRawElement {}
extension UInt8: WireRawElement {}
extension UInt16: WireRawElement {}
extension UInt32: WireRawElement {}
extension UInt64: WireRawElement {}
extension Float: WireRawElement {}
extension Double: WireRawElement {}

/// Whether elements of type `T` may be copied as raw bytes: `T` is a `WireRawElement`
/// and the machine is little-endian (the wire format is little-endian).
@inlinable
func _wireIsRaw<T>(_: T.Type) -> Bool {
    #if _endian(little)
    return T.self is any WireRawElement.Type
    #else
    return false
    #endif
}

extension WireWriter {
    /// Appends `count` (as a varint) and then the elements' bytes with one copy — or, when
    /// `defersLargeBlocks` is set, the elements are many and `owner` (a value holding them:
    /// the array, which keeps them alive and unchanged) is given, a reference to them
    /// (`WireDeferredBlock`). Only for element types where `_wireIsRaw` is true.
    @inlinable
    mutating func _writeRawElements<T>(_ elements: UnsafeBufferPointer<T>, owner: Any? = nil) {
        writeVarint(UInt64(elements.count))
        let raw = UnsafeRawBufferPointer(elements)
        if raw.count >= WireDeferredBlock.minimumSize, defersLargeBlocks, let owner {
            _deferBlock(raw, owner: owner)
        } else if raw.count > 0 {
            bytes.append(contentsOf: raw.assumingMemoryBound(to: UInt8.self))
        }
    }
}

extension WireReader {
    /// Reads what `_writeRawElements` wrote: the count is checked against the bytes left
    /// before the array (of exactly `count` elements) is allocated.
    @inlinable
    mutating func _readRawElements<T>(_: T.Type) throws(WireError) -> [T] {
        let stride = MemoryLayout<T>.stride
        let count = try readCount(minimumElementSize: stride, of: [T].self)
        if count == 0 { return [] }
        let source = try readRaw(count: count * stride)
        if source.count < WireDeferredBlock.minimumSize {
            return [T](unsafeUninitializedCapacity: count) { destination, initialized in
                UnsafeMutableRawPointer(destination.baseAddress!)
                    .copyMemory(from: source.baseAddress!, byteCount: source.count)
                initialized = count
            }
        }
        var failure: WireError?
        let array = [T](unsafeUninitializedCapacity: count) { destination, initialized in
            do throws(WireError) {
                try _wireCopyLarge(to: UnsafeMutableRawPointer(destination.baseAddress!), from: source)
                initialized = count
            } catch {
                failure = error // nothing initialized: the storage goes with the empty array
            }
        }
        if let failure { throw failure }
        return array
    }
}
