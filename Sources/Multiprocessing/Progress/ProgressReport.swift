#if canImport(Glibc)
import Glibc
#endif

/// Where a call reports its progress: `map(…, progress: .automatic(label: "sweep"))`.
///
/// - `.bar`: a live bar with rate and ETA on standard error (for a terminal).
/// - `.lines(every:)`: a plain line (`done/total, rate, ETA`) at most every so many seconds
///   on standard error — batch logs are not terminals.
/// - `.automatic`: the bar when standard error is a terminal, lines otherwise.
/// - `.callback`: your function, with a `ProgressUpdate`, at most every so many seconds and
///   once at the end. It runs on the pool's thread: keep it short.
///
/// Counts are of inputs, settled: delivered or failed for good. A run resumed from a
/// checkpoint counts the whole call: the inputs the journal gave are done from the start
/// (`ProgressUpdate.resumed`), the total is every input, the rate and ETA are this run's own.
/// With no progress option (the default) nothing is measured or printed.
public struct ProgressReport: Sendable {
    enum Style: Sendable {
        case bar
        case lines
        case callback(@Sendable (ProgressUpdate) -> Void)
    }

    let style: Style
    let label: String
    /// Seconds between two reports (the bar: between two redraws).
    let interval: Double
    /// Seconds before the first report (a quick call prints nothing).
    let delay: Double

    /// A live bar on standard error, redrawn at most 10 times a second after the first second.
    public static func bar(label: String = "progress") -> ProgressReport {
        ProgressReport(style: .bar, label: label, interval: 0.1, delay: 1)
    }

    /// A line on standard error at most every `seconds`, and a last one at the end (when at
    /// least one was printed).
    public static func lines(label: String = "progress", every seconds: Double = 10) -> ProgressReport {
        ProgressReport(style: .lines, label: label, interval: max(0, seconds), delay: max(0, seconds))
    }

    /// `bar` when standard error is a terminal, `lines(every:)` otherwise.
    public static func automatic(label: String = "progress", every seconds: Double = 10) -> ProgressReport {
        isatty(2) != 0 ? bar(label: label) : lines(label: label, every: seconds)
    }

    /// `body` with each update, at most every `seconds` (0: after every result) and at the end.
    public static func callback(
        every seconds: Double = 0,
        _ body: @escaping @Sendable (ProgressUpdate) -> Void
    ) -> ProgressReport {
        ProgressReport(style: .callback(body), label: "", interval: max(0, seconds), delay: 0)
    }
}

/// A call's progress at one moment.
public struct ProgressUpdate: Sendable, Equatable {
    /// Inputs delivered (those a checkpoint journal gave included).
    public var done: Int
    /// Of `done`, the inputs whose results a checkpoint journal gave (a resumed run): not
    /// run again, and not counted in `rate`.
    public var resumed: Int
    /// Inputs failed for good.
    public var failed: Int
    /// All inputs (nil for an `imap` whose sequence is not exhausted yet).
    public var total: Int?
    /// Seconds since the call was submitted.
    public var elapsed: Double
    /// Inputs settled per second so far by this run (not those the journal gave).
    public var rate: Double
    /// Seconds left at that rate (nil while the total or the rate is unknown).
    public var remaining: Double?
    /// Whether this is the last update of the call.
    public var isFinal: Bool

    /// `"label: 1234/5000 (24.7%), 3.21k/s, ETA 1m12s"`; a resumed run's says how many
    /// came from the checkpoint: `"label: 1234/5000 (24.7%), 1000 from the checkpoint, …"`.
    public func line(label: String) -> String {
        let settled = done + failed
        var text = "\(label): \(settled)"
        if let total {
            text += "/\(total)"
            if total > 0 { text += " (\(ProgressUpdate.percent(settled, of: total)))" }
        }
        if resumed > 0 { text += ", \(resumed) from the checkpoint" }
        if failed > 0 { text += ", \(failed) failed" }
        text += ", \(ProgressUpdate.rate(rate))"
        if isFinal {
            text += ", done in \(ProgressUpdate.duration(elapsed))"
        } else if let remaining {
            text += ", ETA \(ProgressUpdate.duration(remaining))"
        }
        return text
    }

    static func percent(_ part: Int, of whole: Int) -> String {
        let tenths = Int((Double(part) * 1000 / Double(max(whole, 1))).rounded(.down))
        return "\(tenths / 10).\(tenths % 10)%"
    }

    static func rate(_ perSecond: Double) -> String {
        switch perSecond {
        case ..<1_000: return "\(Int(perSecond.rounded()))/s"
        case ..<1_000_000: return "\(Int((perSecond / 10).rounded()) / 100).\(Int((perSecond / 10).rounded()) % 100)k/s"
        default: return "\(Int((perSecond / 10_000).rounded()) / 100).\(Int((perSecond / 10_000).rounded()) % 100)M/s"
        }
    }

    static func duration(_ seconds: Double) -> String {
        let whole = Int(seconds.rounded())
        if whole < 60 { return "\(whole)s" }
        if whole < 3600 { return "\(whole / 60)m\(whole % 60)s" }
        return "\(whole / 3600)h\((whole % 3600) / 60)m"
    }
}

/// Counts one call's settled inputs and reports them as its `ProgressReport` says. Called
/// on the engine's thread only.
final class ProgressMeter {
    private let report: ProgressReport
    private let start: UInt64
    private var total: Int?
    private var done = 0
    private var failed = 0
    /// Of `done`, the inputs a checkpoint journal gave.
    private var resumed = 0
    private var lastReport: UInt64
    private var reported = false
    private var finished = false
    private let clock: () -> UInt64
    private let output: (String) -> Void

    init(
        _ report: ProgressReport, total: Int?, clock: @escaping () -> UInt64 = monotonicNanoseconds,
        output: @escaping (String) -> Void = ProgressMeter.writeStandardError
    ) {
        self.report = report
        self.total = total
        self.clock = clock
        self.output = output
        start = clock()
        lastReport = start
    }

    /// The total, once an `imap`'s sequence is exhausted: `count` inputs run, and those the
    /// journal gave.
    func setTotal(_ count: Int) { total = count + resumed }

    /// `count` more inputs whose results a checkpoint journal gave (done, and part of the
    /// total, but not of the rate). Reports nothing by itself.
    func resume(_ count: Int) {
        resumed += count
        done += count
        total = total.map { $0 + count }
    }

    func advance(done delivered: Int = 0, failed lost: Int = 0) {
        done += delivered
        failed += lost
        let now = clock()
        let sinceStart = Double(now &- start) / 1e9
        let sinceLast = Double(now &- lastReport) / 1e9
        guard sinceStart >= report.delay, sinceLast >= report.interval || !reported && report.delay == 0 else { return }
        emit(now: now, final: false)
    }

    /// The call ended (delivered, failed or cancelled): the last report.
    func finish() {
        guard !finished else { return }
        finished = true
        switch report.style {
        case .callback: emit(now: clock(), final: true)
        case .bar, .lines: if reported { emit(now: clock(), final: true) }
        }
    }

    private func update(now: UInt64, final: Bool) -> ProgressUpdate {
        let elapsed = Double(now &- start) / 1e9
        let settled = done + failed
        let rate = elapsed > 0 ? Double(settled - resumed) / elapsed : 0
        let remaining = total.flatMap { total in rate > 0 ? Double(max(0, total - settled)) / rate : nil }
        return ProgressUpdate(
            done: done, resumed: resumed, failed: failed, total: total, elapsed: elapsed, rate: rate,
            remaining: remaining, isFinal: final)
    }

    private func emit(now: UInt64, final: Bool) {
        lastReport = now
        reported = true
        let update = update(now: now, final: final)
        switch report.style {
        case .callback(let body):
            body(update)
        case .lines:
            output(update.line(label: report.label) + "\n")
        case .bar:
            output(
                "\r\u{1B}[2K" + ProgressMeter.bar(update) + " " + update.line(label: report.label)
                    + (final ? "\n" : ""))
        }
    }

    static func bar(_ update: ProgressUpdate, width: Int = 24) -> String {
        guard let total = update.total, total > 0 else { return "[" + String(repeating: "·", count: width) + "]" }
        let filled = min(width, width * (update.done + update.failed) / total)
        return "[" + String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled) + "]"
    }

    static func writeStandardError(_ text: String) {
        var text = text
        text.withUTF8 { bytes in
            var offset = 0
            while offset < bytes.count {
                let written = write(2, bytes.baseAddress! + offset, bytes.count - offset)
                if written < 0 && errno == EINTR { continue }
                if written <= 0 { return }
                offset += written
            }
        }
    }
}
