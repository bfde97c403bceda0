import FuzzSupport

// Headers from the network: `Cache-Control` on a JWKS answer (broker gateway; issue 9 item 10)
// and GitHub's pagination `Link`. The input is split at newlines into header values, as a
// client receives repeated headers. Invariants beyond "no crash":
// - max-age is never negative;
// - a Link target is a substring of the input, never something invented.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHTTPHeaders(_ data: UnsafeRawPointer, _ count: Int) -> CInt {
    let text = fuzzText(data, count)
    let values = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)

    if let maxAge = CacheControl.maxAge(values) {
        fuzzCheck(maxAge >= 0, "negative max-age")
    }

    for relation in ["next", "last", "NEXT", ""] {
        if let target = LinkHeader.target(rel: relation, in: values) {
            fuzzCheck(text.contains(target), "a Link target that is not in the header")
        }
    }
    return 0
}
