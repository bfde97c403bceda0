import BrokerCommands
import BrokerSync
import Foundation
import Logging
import XCTest

/// `log_format: json` lines: one parseable object per event, whatever the message and metadata hold.
final class JSONLogHandlerTests: XCTestCase {
    final class Lines: Sendable {
        private let lines = Locked<[String]>([])
        func append(_ bytes: [UInt8]) { lines.withLock { $0.append(String(decoding: bytes, as: UTF8.self)) } }
        var all: [String] { lines.withLock { $0 } }
    }

    struct Odd: CustomStringConvertible {
        var description: String { "odd\u{0}value\u{7}" }
    }

    func testOddMessagesAndMetadataStayOneValidLine() throws {
        let lines = Lines()
        var logger = Logger(label: "broker \"test\"") { label in JSONLogHandler(label: label) { lines.append($0) } }
        logger.logLevel = .debug
        logger[metadataKey: "request_id"] = "abc-123"
        logger.warning(
            "quote \" backslash \\ newline \n tab \t bell \u{7} emoji 🔑 line separator \u{2028}",
            metadata: [
                "message": "collides with a fixed member",
                "list": .array(["a", "b\"c"]),
                "map": .dictionary(["k": "v\n"]),
                "convertible": .stringConvertible(Odd()),
                "": "empty key",
            ])
        logger.trace("below the level: not written")

        XCTAssertEqual(lines.all.count, 1)
        let line = try XCTUnwrap(lines.all.first)
        XCTAssertTrue(line.hasSuffix("}\n"))
        XCTAssertEqual(line.filter { $0 == "\n" }.count, 1, "exactly one line: \(line)")
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: String])
        XCTAssertEqual(object["level"], "warning")
        XCTAssertEqual(object["label"], "broker \"test\"")
        XCTAssertEqual(object["message"], "quote \" backslash \\ newline \n tab \t bell \u{7} emoji 🔑 line separator \u{2028}")
        XCTAssertEqual(object["metadata.message"], "collides with a fixed member")
        XCTAssertEqual(object["request_id"], "abc-123")
        XCTAssertEqual(object["convertible"], "odd\u{0}value\u{7}")
        XCTAssertEqual(object[""], "empty key")
        XCTAssertNotNil(object["list"])
        XCTAssertNotNil(object["map"])
        let time = try XCTUnwrap(object["time"])
        XCTAssertNotNil(time.wholeMatch(of: /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z/), time)
    }

    func testTheMetadataProviderAddsItsValues() throws {
        let lines = Lines()
        let provider = Logger.MetadataProvider { ["request_id": "from-provider"] }
        let logger = Logger(label: "broker") { label in
            JSONLogHandler(label: label, metadataProvider: provider) { lines.append($0) }
        }
        logger.info("hello")
        let object = try XCTUnwrap(
            try JSONSerialization.jsonObject(with: Data(XCTUnwrap(lines.all.first).utf8)) as? [String: String])
        XCTAssertEqual(object["request_id"], "from-provider")
    }
}
