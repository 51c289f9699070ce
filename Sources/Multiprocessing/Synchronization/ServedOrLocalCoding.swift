/// How a synchronization object travels: under mpirun, the id rank 0 serves it under;
/// otherwise its shared segment. One keyed container, the served id first (0: local), so the
/// Wire decoder reads the keys in the order they were written.
enum ServedOrLocalCoding {
    private enum CodingKeys: String, CodingKey { case served, segment }

    /// What an encoding held: a served id, or a segment.
    enum Decoded {
        case served(UInt64)
        case local(SharedSegment)
    }

    static func encode(servedID: UInt64?, segment: SharedSegment?, kind: String, to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        if let servedID {
            try MPIServedObject.checkEncoding(kind, id: servedID)
            try container.encode(servedID, forKey: .served)
            return
        }
        try container.encode(UInt64(0), forKey: .served)
        try container.encode(segment!, forKey: .segment)
    }

    static func decode(kind: String, from decoder: any Decoder) throws -> Decoded {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let id = try container.decode(UInt64.self, forKey: .served)
        if id != 0 {
            try MPIServedObject.checkDecoding(kind)
            return .served(id)
        }
        return .local(try container.decode(SharedSegment.self, forKey: .segment))
    }
}
