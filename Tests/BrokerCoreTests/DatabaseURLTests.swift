import BrokerCore
import XCTest

/// `database_url`: what parses, what is refused (saying why, never echoing the password), and
/// how it is shown.
final class DatabaseURLTests: XCTestCase {
    private let secret = "Pa55:w@rd/x"
    private var encodedSecret: String { "Pa55%3Aw%40rd%2Fx" }

    func testAFullURLParsesWithItsPercentEncodedPassword() throws {
        let url = try DatabaseURL(
            parsing: "postgres://broker:\(encodedSecret)@db.example.org:6432/brokerdb?sslmode=verify-full&sslrootcert=/etc/broker/ca.pem")
        XCTAssertEqual(url.user, "broker")
        XCTAssertEqual(url.password, secret)
        XCTAssertEqual(url.host, "db.example.org")
        XCTAssertEqual(url.port, 6432)
        XCTAssertEqual(url.database, "brokerdb")
        XCTAssertEqual(url.tlsMode, .verifyFull)
        XCTAssertEqual(url.rootCertificatePath, "/etc/broker/ca.pem")
        XCTAssertNil(url.socketDirectory)
    }

    func testTLSIsVerifiedByDefaultExceptOnLoopbackAndSockets() throws {
        XCTAssertEqual(try DatabaseURL(parsing: "postgres://u@db.example.org/b").tlsMode, .verifyFull)
        XCTAssertEqual(try DatabaseURL(parsing: "postgresql://u@127.0.0.1/b").tlsMode, .disable)
        XCTAssertEqual(try DatabaseURL(parsing: "postgres://u@[::1]:5433/b").host, "::1")
        XCTAssertEqual(try DatabaseURL(parsing: "postgres://u@[::1]:5433/b").tlsMode, .disable)
        XCTAssertEqual(try DatabaseURL(parsing: "postgres://u@localhost/b?sslmode=require").tlsMode, .require)
        let socket = try DatabaseURL(parsing: "postgres://u@/b?host=/run/postgresql")
        XCTAssertEqual(socket.socketDirectory, "/run/postgresql")
        XCTAssertEqual(socket.tlsMode, .disable)
        XCTAssertEqual(socket.port, 5432)
    }

    func testTheDescriptionMasksThePassword() throws {
        let url = try DatabaseURL(parsing: "postgres://broker:\(encodedSecret)@db.example.org/brokerdb")
        XCTAssertFalse("\(url)".contains("Pa55"), "\(url)")
        XCTAssertTrue("\(url)".contains("broker:********@db.example.org"), "\(url)")
        XCTAssertFalse(String(reflecting: url).contains("Pa55"), "debug descriptions mask it too")
        let withoutPassword = try DatabaseURL(parsing: "postgres://broker@db.example.org/brokerdb")
        XCTAssertFalse("\(withoutPassword)".contains("*"))
    }

    func testInvalidURLsAreRefusedNamingTheProblemAndNeverThePassword() {
        let cases: [(String, String)] = [
            ("mysql://u:\(encodedSecret)@h/b", "scheme"),
            ("postgres://h/b", "no user"),
            ("postgres://u:\(encodedSecret)@h", "no database"),
            ("postgres://u:\(encodedSecret)@h/", "no database"),
            ("postgres://u:\(encodedSecret)@/b", "no host"),
            ("postgres://u:\(encodedSecret)@h/b?sslmode=prefer", "sslmode"),
            ("postgres://u:\(encodedSecret)@h/b?sslmode=require&sslrootcert=/ca.pem", "sslrootcert needs"),
            ("postgres://u:\(encodedSecret)@h/b?application_name=x", "unknown parameter application_name"),
            ("postgres://u:\(encodedSecret)@h:0/b", "port"),
            ("postgres://u@/b?host=relative", "absolute"),
            ("postgres://u:\(encodedSecret)@/b?host=/run/pg&sslmode=require", "unix socket"),
            ("postgres://u:\(encodedSecret)@h/b#frag", "fragment"),
        ]
        for (text, expected) in cases {
            XCTAssertThrowsError(try DatabaseURL(parsing: text), text) { error in
                let message = "\(error)"
                XCTAssertTrue(message.contains(expected), "\(text): \(message)")
                XCTAssertFalse(message.contains("Pa55"), "\(text): \(message)")
                XCTAssertTrue(message.hasPrefix("database_url"), message)
            }
        }
    }

    func testTheConfigurationChecksTheURLAndWherePasswordsCome() throws {
        var configuration = BrokerConfiguration()
        try configuration.set("database_url", to: "postgres://u:\(encodedSecret)@h/b?sslmode=bogus", source: "test")
        XCTAssertThrowsError(try configuration.validate()) { error in
            XCTAssertFalse("\(error)".contains("Pa55"), "\(error)")
        }
        try configuration.set("database_url", to: "postgres://u:\(encodedSecret)@h/b", source: "test")
        try configuration.set("database_password_file", to: "/run/secrets/db", source: "test")
        XCTAssertThrowsError(try configuration.validate()) { error in
            XCTAssertTrue("\(error)".contains("one place"), "\(error)")
            XCTAssertFalse("\(error)".contains("Pa55"), "\(error)")
        }
        try configuration.set("database_url", to: "postgres://u@h/b", source: "test")
        XCTAssertNoThrow(try configuration.validate())
        try configuration.set("database_url", to: "", source: "test")
        XCTAssertThrowsError(try configuration.validate(), "a password file without a URL")
        XCTAssertThrowsError(try configuration.set("database_pool_size", to: "0", source: "test"))
        XCTAssertThrowsError(try configuration.set("database_statement_timeout", to: "0", source: "test"))
    }
}
