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
    /// Reads the count `_writeRawElements` wrote and the region of `count × stride` bytes
    /// after it (in the message, or a reference to another process's memory when the
    /// region is `WireDeferredBlock.minimumSize` bytes or more: copy it with
    /// `_copyRawRegion`). The count is checked against the bytes left first.
    @inlinable
    public mutating func _readRawRegion<T>(_: T.Type) throws(WireError) -> (count: Int, bytes: UnsafeRawBufferPointer) {
        let count = try readCount(minimumElementSize: MemoryLayout<T>.stride, arrayOf: T.self)
        return (count, try readRaw(count: count * MemoryLayout<T>.stride))
    }

    /// Reads what `_writeRawElements` wrote into an array of exactly `count` elements.
    @inlinable
    mutating func _readRawElements<T>(_: T.Type) throws(WireError) -> [T] {
        let (count, source) = try _readRawRegion(T.self)
        if count == 0 { return [] }
        var failure: WireError?
        let array = [T](unsafeUninitializedCapacity: count) { destination, initialized in
            do throws(WireError) {
                try _copyRawRegion(source, to: UnsafeMutableRawPointer(destination.baseAddress!))
                initialized = count
            } catch {
                failure = error // nothing initialized: the storage goes with the empty array
            }
        }
        if let failure { throw failure }
        return array
    }
}

/// Copies a region `_readRawRegion` returned to `destination`: with one `memcpy` when it is
/// in the message, else from where it lives (`_wireCopyLarge`).
@inlinable
public func _copyRawRegion(_ source: UnsafeRawBufferPointer, to destination: UnsafeMutableRawPointer) throws(WireError) {
    try _copyRawRegion(source, of: source.count, to: destination)
}

/// Copies `piece`, a part of a region of `regionCount` bytes that `_readRawRegion` returned,
/// to `destination`: where the region lives decides how (a region of
/// `WireDeferredBlock.minimumSize` bytes or more may be in another process's memory, so its
/// pieces are read from there however small).
@inlinable
public func _copyRawRegion(_ piece: UnsafeRawBufferPointer, of regionCount: Int, to destination: UnsafeMutableRawPointer) throws(WireError) {
    guard piece.count > 0 else { return }
    if regionCount < WireDeferredBlock.minimumSize {
        destination.copyMemory(from: piece.baseAddress!, byteCount: piece.count)
    } else {
        try _wireCopyLarge(to: destination, from: piece)
    }
}

// Reading and writing raw arrays in place, for a caller that computes element by element
// (the pool's chunk loop) and would otherwise build an array only to copy it.

/// Whether arrays of `T` travel as raw bytes (`WireRawElement`, little-endian machine): then
/// `_readRawElementBytes`, `_appendRawElements` and `_decodeRawArray` apply.
@inlinable
public func _wireTravelsRaw<T>(_: T.Type) -> Bool { _wireIsRaw(T.self) }

extension WireReader {
    /// Reads what `WireWriter.encodeArray` wrote for a type where `_wireTravelsRaw` is true,
    /// as the elements' bytes (`count × stride`, not aligned for `T`: read them with
    /// `loadUnaligned`), without copying. Nil, with nothing read, when the array is
    /// `WireDeferredBlock.minimumSize` bytes or more: its bytes may then be a reference to
    /// another process's memory (decode it with `decodeArray`).
    @inlinable
    public mutating func _readRawElementBytes<T>(_: T.Type) throws(WireError) -> (count: Int, bytes: UnsafeRawBufferPointer)? {
        let start = offset
        let region = try _readRawRegion(T.self)
        guard region.bytes.count < WireDeferredBlock.minimumSize else {
            offset = start
            return nil
        }
        return region
    }

    /// What `decodeArray` returns for a type where `_wireTravelsRaw` is true, copied into
    /// `destination` instead of a new array when the message holds exactly `expected`
    /// elements. Returns how many it holds: when that is not `expected`, nothing is copied
    /// and nothing read.
    @inlinable
    public mutating func _decodeRawArray<T>(_: T.Type, into destination: UnsafeMutablePointer<T>, expected: Int) throws(WireError) -> Int {
        let start = offset
        let (count, source) = try _readRawRegion(T.self)
        guard count == expected else {
            offset = start
            return count
        }
        try _copyRawRegion(source, to: UnsafeMutableRawPointer(destination))
        return count
    }
}

extension WireWriter {
    /// Appends what `encodeArray` appends for the `count` elements whose bytes are `block` (a
    /// type where `_wireTravelsRaw` is true): a reference to `block` when `defersLargeBlocks`
    /// is set and it is `WireDeferredBlock.minimumSize` bytes or more — `owner` keeps it
    /// alive and unchanged until the message has been read — else a copy.
    @inlinable
    public mutating func _appendRawElements<T>(_: T.Type, count: Int, block: UnsafeRawBufferPointer, owner: Any) {
        _writeRawElements(
            UnsafeBufferPointer(start: block.baseAddress?.assumingMemoryBound(to: T.self), count: count), owner: owner)
    }

    /// Appends what `encodeArray` appends for `count` elements of a type where
    /// `_wireTravelsRaw` is true, the elements written in place by `initialize` (it must
    /// write all `count × stride` bytes, with `storeBytes`: they are not aligned for `T`).
    /// Never a deferred block: for arrays under `WireDeferredBlock.minimumSize` bytes.
    @inlinable
    public mutating func _appendRawElements<T>(_: T.Type, count: Int, _ initialize: (UnsafeMutableRawBufferPointer) -> Void) {
        writeVarint(UInt64(count))
        appendBytes(count: count * MemoryLayout<T>.stride, initialize)
    }
}
