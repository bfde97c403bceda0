import BrokerCrypto
import Foundation
import FuzzSupport

// The strict JSON parser that reads every token header, claim set, JWKS and request body.
// Invariants beyond "no crash":
// - what it accepts, the writer writes back as JSON it accepts again, to the same bytes (so a
//   parsed value never changes meaning when the broker writes it out);
// - a value accepted at depth 8 (token headers) is accepted at the default depth;
// - it is stricter than Foundation's JSONSerialization, never laxer: a document Foundation
//   refuses but we accept is a parser that reads something other parsers do not.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzJSON(_ data: UnsafeRawPointer, _ count: Int) -> CInt {
    let bytes = fuzzBytes(data, count)
    guard let value = try? JSONParser.parse(bytes) else {
        fuzzCheck((try? JSONParser.parse(bytes, maxDepth: 8)) == nil, "accepted at depth 8, refused at 16")
        return 0
    }
    var writer = JSONWriter()
    writer.value(value)
    let written = writer.bytes
    guard let reread = try? JSONParser.parse(written, maxDepth: 64) else {
        fuzzCheck(false, "the writer wrote JSON the parser refuses")
        return 0
    }
    var again = JSONWriter()
    again.value(reread)
    fuzzCheck(again.bytes == written, "writing a re-read value changed it")
    fuzzCheck(
        (try? JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed])) != nil,
        "accepted a document Foundation refuses")
    return 0
}
