// A file of its own, free of libcurl, so that the fuzz target FuzzHTTPHeaders compiles it with
// LinkHeader.swift (docs/fuzzing.md).
extension Substring {
    /// Without spaces, tabs, CR and LF at either end (header lines arrive with their CRLF).
    func trimmingWhitespace() -> String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\r" || $0 == "\n" || $0 == "\r\n" }
        guard let first = firstIndex(where: { !isSpace($0) }), let last = lastIndex(where: { !isSpace($0) }) else {
            return ""
        }
        return String(self[first...last])
    }
}
