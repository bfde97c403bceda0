import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// A failed start says what failed, and nothing else: the address of a listener that could not
/// bind, without the store's "not closed" warning in front of it. Over the real binary.
final class StartupErrorTests: XCTestCase {
    var broker: BrokerBinary!

    override func setUpWithError() throws {
        broker = try BrokerBinary.make()
    }

    override func tearDown() {
        broker?.cleanUp()
    }

    static let unclosedStoreWarning = "SQLiteStore was not closed"

    func testAPortInUseNamesTheAddress() throws {
        let occupied = try OccupiedPort()
        defer { occupied.release() }
        let result = try broker.runExpectingExit(["serve", "--port", "\(occupied.port)"])
        XCTAssertFalse(result.stillRunning, result.stdout)
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(
            result.stderr.contains("error: cannot listen on 127.0.0.1:\(occupied.port): address already in use"), result.stderr)
        XCTAssertFalse(result.stderr.contains(Self.unclosedStoreWarning), result.stderr)
    }

    func testAMetricsPortInUseNamesTheAddressAndTheListener() throws {
        let occupied = try OccupiedPort()
        defer { occupied.release() }
        let result = try broker.runExpectingExit(["serve", "--port", "0"], environment: withVariable("BROKER_METRICS_PORT", "\(occupied.port)"))
        XCTAssertFalse(result.stillRunning, result.stdout)
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(
            result.stderr.contains("error: cannot listen on 127.0.0.1:\(occupied.port) (metrics): address already in use"),
            result.stderr)
        XCTAssertFalse(result.stderr.contains(Self.unclosedStoreWarning), result.stderr)
    }

    func testTheGatewayNamesTheAddressItCannotListenOn() throws {
        let occupied = try OccupiedPort()
        defer { occupied.release() }
        let result = try broker.runExpectingExit([
            "gateway", "--jwks", "http://127.0.0.1:1/.well-known/jwks.json", "--issuer", "http://127.0.0.1:1",
            "--cluster", "cluster1", "--port", "\(occupied.port)",
        ])
        XCTAssertFalse(result.stillRunning, result.stdout)
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(
            result.stderr.contains("error: cannot listen on 127.0.0.1:\(occupied.port): address already in use"), result.stderr)
    }

    func testOtherStartupErrorsCloseTheStoreToo() throws {
        // Refused after the store is open: the bootstrap admin has no password.
        let result = try broker.runExpectingExit(["serve", "--port", "0"], environment: withVariable("BROKER_BOOTSTRAP_ADMIN", "root"))
        XCTAssertFalse(result.stillRunning, result.stdout)
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.stderr.contains("no default password"), result.stderr)
        XCTAssertFalse(result.stderr.contains(Self.unclosedStoreWarning), result.stderr)
    }

    private func withVariable(_ name: String, _ value: String) -> [String: String] {
        var environment = broker.environment
        environment[name] = value
        return environment
    }
}

/// A loopback TCP port with a listener on it, so that nobody else can listen there.
struct OccupiedPort {
    let descriptor: Int32
    let port: Int

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.EMFILE) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        guard bound == 0, listen(fd, 1) == 0 else {
            close(fd)
            throw POSIXError(.EADDRINUSE)
        }
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard named == 0 else {
            close(fd)
            throw POSIXError(.EINVAL)
        }
        descriptor = fd
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    func release() {
        close(descriptor)
    }
}
