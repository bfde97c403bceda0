import BrokerCore
import XCTest

final class NamePolicyTests: XCTestCase {
    /// NIST SP 800-63B counts each code point: twelve letters with combining accents are 24
    /// characters, not 12; six of them are 12, not 6.
    func testPasswordLengthCountsCodePoints() throws {
        let accented = String(repeating: "e\u{301}", count: 6)
        XCTAssertEqual(accented.count, 6)
        XCTAssertNoThrow(try PasswordPolicy.validateNew(accented))
        XCTAssertThrowsError(try PasswordPolicy.validateNew(String(repeating: "e\u{301}", count: 5) + "e")) { error in
            XCTAssertEqual((error as? BrokerError)?.code, .invalidPassword)
        }
        XCTAssertNoThrow(try PasswordPolicy.validateNew(String(repeating: "x", count: 1024)))
        XCTAssertThrowsError(try PasswordPolicy.validateNew(String(repeating: "e\u{301}", count: 513)))
    }
}
