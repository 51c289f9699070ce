/// A coding path built only when asked for: the parent's path and one more key, so that
/// encoding or decoding a field does not allocate an array.
@usableFromInline
struct _WirePath {
    var base: [any CodingKey]
    var last: (any CodingKey)?

    @usableFromInline static var root: _WirePath { _WirePath(base: [], last: nil) }

    @usableFromInline
    init(base: [any CodingKey], last: (any CodingKey)?) {
        self.base = base
        self.last = last
    }

    var array: [any CodingKey] {
        guard let last else { return base }
        return base + [last]
    }

    func appending(_ key: any CodingKey) -> _WirePath {
        _WirePath(base: array, last: key)
    }
}
