import CMPI
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The MPI library of this process: initialisation, finalisation and process-wide facts.
///
/// MPI can be initialised once per process and never again after `finalize()`; a program
/// started without `mpirun` becomes rank 0 of a world of 1 (a "singleton").
/// `initialize` installs `MPI_ERRORS_RETURN` on `MPI_COMM_WORLD` and `MPI_COMM_SELF`, so every
/// failure reaches Swift as a thrown `MPIError` instead of aborting the job.
public enum MPIEnvironment {
    /// Also holds the threads `MPI_Init` started, which `finalize` lets finish their work.
    private static let lock = Mutex(LibraryThreads(ids: []))

    /// How long `finalize` waits for the MPI library's own threads to be quiet.
    static let quietNanoseconds: UInt64 = 2_000_000_000

    /// Initialises MPI once for this process and returns the thread level the library provides,
    /// which may be lower than the one asked for. Calling it again returns the level already
    /// provided without initialising twice.
    ///
    /// - Throws: `MPIError` if MPI fails to start or was already finalised.
    ///
    /// The corresponding MPI function is `MPI_Init_thread`.
    @discardableResult
    public static func initialize(threadLevel requested: ThreadLevel = .funneled) throws(MPIError) -> ThreadLevel {
        try lock.withLock { libraryThreads throws(MPIError) -> ThreadLevel in
            if isFinalized {
                throw MPIError(function: "MPI_Init_thread", message: "MPI was already finalized in this process; it cannot be initialised again")
            }
            if isInitialized { return try queryThreadLevel() }
            var provided: Int32 = 0
            let (status, started) = LibraryThreads.started { MPI_Init_thread(nil, nil, requested.mpiValue, &provided) }
            libraryThreads = started
            try check("MPI_Init_thread", status)
            try check("MPI_Comm_set_errhandler", MPI_Comm_set_errhandler(cmpi_comm_world(), cmpi_errors_return()))
            try check("MPI_Comm_set_errhandler", MPI_Comm_set_errhandler(cmpi_comm_self(), cmpi_errors_return()))
            return ThreadLevel(mpiValue: provided) ?? .single
        }
    }

    /// Whether `initialize` (or any other `MPI_Init`) has run in this process.
    ///
    /// The corresponding MPI function is `MPI_Initialized`.
    public static var isInitialized: Bool {
        var flag: Int32 = 0
        MPI_Initialized(&flag)
        return flag != 0
    }

    /// Whether MPI has been finalised in this process.
    ///
    /// The corresponding MPI function is `MPI_Finalized`.
    public static var isFinalized: Bool {
        var flag: Int32 = 0
        MPI_Finalized(&flag)
        return flag != 0
    }

    /// The thread level the library provides.
    ///
    /// The corresponding MPI function is `MPI_Query_thread`.
    public static var threadLevel: ThreadLevel {
        get throws(MPIError) { try queryThreadLevel() }
    }

    private static func queryThreadLevel() throws(MPIError) -> ThreadLevel {
        var provided: Int32 = 0
        try check("MPI_Query_thread", MPI_Query_thread(&provided))
        return ThreadLevel(mpiValue: provided) ?? .single
    }

    /// Shuts MPI down. Every rank must call it before exiting normally; calling it again, or
    /// before `initialize`, does nothing.
    ///
    /// It first lets the threads the MPI library started in `initialize` run what is queued
    /// for them (up to 2 s): Open MPI 4.1 unloads code they may still be about to run
    /// (`LibraryThreads`).
    ///
    /// The corresponding MPI function is `MPI_Finalize`.
    public static func finalize() throws(MPIError) {
        try lock.withLock { libraryThreads throws(MPIError) in
            guard isInitialized, !isFinalized else { return }
            _ = libraryThreads.waitUntilQuiet(timeoutNanoseconds: quietNanoseconds)
            try check("MPI_Finalize", MPI_Finalize())
        }
    }

    /// The name of the node this rank runs on (usually its host name).
    ///
    /// The corresponding MPI function is `MPI_Get_processor_name`.
    public static var processorName: String {
        get throws(MPIError) {
            var buffer = [CChar](repeating: 0, count: Int(MPI_MAX_PROCESSOR_NAME) + 1)
            var length: Int32 = 0
            try check("MPI_Get_processor_name", MPI_Get_processor_name(&buffer, &length))
            return String(decoding: buffer.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
    }

    /// The MPI library's own description of itself, e.g. "Open MPI v4.1.4, …". Works before
    /// `initialize`.
    ///
    /// The corresponding MPI function is `MPI_Get_library_version`.
    public static var libraryVersion: String {
        get throws(MPIError) {
            var buffer = [CChar](repeating: 0, count: Int(MPI_MAX_LIBRARY_VERSION_STRING) + 1)
            var length: Int32 = 0
            try check("MPI_Get_library_version", MPI_Get_library_version(&buffer, &length))
            let text = String(decoding: buffer.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
            return text.trimmingTrailingWhitespace()
        }
    }

    /// Seconds since an arbitrary moment in the past, from MPI's high-resolution clock.
    ///
    /// The corresponding MPI function is `MPI_Wtime`.
    public static var wtime: Double { MPI_Wtime() }

    /// The resolution of `wtime`, in seconds.
    ///
    /// The corresponding MPI function is `MPI_Wtick`.
    public static var wtick: Double { MPI_Wtick() }

    /// Ends every rank of the job (of `communicator`'s group, in practice the whole job) and
    /// makes `mpirun` return `code`. Use it when a rank cannot go on; ranks blocked in
    /// communication with this one would otherwise wait for ever.
    ///
    /// The corresponding MPI function is `MPI_Abort`.
    public static func abort(_ code: Int32 = 1, communicator: Communicator = .world) -> Never {
        if isInitialized && !isFinalized {
            MPI_Abort(communicator.handle, code)
        }
        exit(code)
    }
}

extension String {
    fileprivate func trimmingTrailingWhitespace() -> String {
        var scalars = Substring(self)
        while let last = scalars.last, last.isWhitespace || last == "\0" { scalars.removeLast() }
        return String(scalars)
    }
}
