/// An invariant of the code under test. A violation aborts, which libFuzzer reports as a crash
/// and saves the input as `crash-*`: a wrong answer is as much a finding as a trap.
public func fuzzCheck(_ condition: Bool, _ message: @autoclosure () -> String) {
    if !condition { fatalError("fuzz invariant violated: \(message())") }
}

/// The input as a String, the way an HTTP server hands a header or a body to the code
/// (invalid UTF-8 repaired with U+FFFD).
public func fuzzText(_ data: UnsafeRawPointer, _ count: Int) -> String {
    String(decoding: UnsafeRawBufferPointer(start: data, count: count), as: UTF8.self)
}

/// The input's bytes.
public func fuzzBytes(_ data: UnsafeRawPointer, _ count: Int) -> [UInt8] {
    Array(UnsafeRawBufferPointer(start: data, count: count))
}
