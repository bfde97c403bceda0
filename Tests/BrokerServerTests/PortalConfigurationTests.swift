import BrokerCore
import XCTest

/// The portal's settings and the relations `validate()` holds them to.
final class PortalConfigurationTests: XCTestCase {
    func configuration(_ pairs: [(String, String)]) throws -> BrokerConfiguration {
        var configuration = BrokerConfiguration()
        for (key, value) in pairs { try configuration.set(key, to: value, source: "test") }
        try configuration.validate()
        return configuration
    }

    func testDefaults() throws {
        let configuration = try configuration([])
        XCTAssertTrue(configuration.portalEnabled)
        XCTAssertEqual(configuration.portalSessionLifetime, 28_800)
        XCTAssertEqual(configuration.portalIdleTimeout, 1800)
        XCTAssertFalse(configuration.portalInsecureCookies)
        XCTAssertFalse(try self.configuration([("portal", "off")]).portalEnabled)
        XCTAssertFalse(try self.configuration([("portal", "false")]).portalEnabled)
        XCTAssertThrowsError(try self.configuration([("portal", "maybe")]))
    }

    func testInsecureCookiesOnlyForAnHTTPIssuerOnLoopback() throws {
        for issuer in ["http://localhost:8080", "http://127.0.0.1:8080", "http://127.8.9.1", "http://[::1]:8080"] {
            XCTAssertNoThrow(try configuration([("issuer", issuer), ("portal_insecure_cookies", "true")]), issuer)
        }
        for issuer in ["https://localhost:8080", "http://login.example.org", "http://10.0.0.1", "http://localhost.example.org"] {
            XCTAssertThrowsError(try configuration([("issuer", issuer), ("portal_insecure_cookies", "true")]), issuer) { error in
                XCTAssertTrue("\(error)".contains("portal_insecure_cookies"), "\(error)")
            }
        }
    }

    func testTheLifetimesAreCappedByTheSessionsLimitNotRefused() throws {
        // A configuration that started before the portal existed still starts.
        let short = try configuration([("session_max_lifetime", "3600"), ("refresh_lifetime", "3600")])
        XCTAssertEqual(PortalSessionPolicy(short), PortalSessionPolicy(lifetime: 3600, idleTimeout: 1800))
        let tiny = try configuration([("portal_session_lifetime", "600")])
        XCTAssertEqual(PortalSessionPolicy(tiny), PortalSessionPolicy(lifetime: 600, idleTimeout: 600))
        XCTAssertThrowsError(try configuration([("portal_idle_timeout", "30")]))
        XCTAssertThrowsError(try configuration([("portal_session_lifetime", "60")]))
    }
}
