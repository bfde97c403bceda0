import BrokerCore
import Foundation
import XCTest

/// Addresses, blocks, and who may name the client IP.
final class TrustedProxiesTests: XCTestCase {
    func testAddressesParseToCanonicalText() {
        XCTAssertEqual(IPAddress("192.0.2.1")?.description, "192.0.2.1")
        XCTAssertEqual(IPAddress("2001:DB8:0:0:0:0:0:1")?.description, "2001:db8::1")
        XCTAssertEqual(IPAddress("::ffff:192.0.2.1")?.description, "192.0.2.1")
        XCTAssertEqual(IPAddress("::ffff:192.0.2.1")?.family, .v4)
        XCTAssertEqual(IPAddress("::1")?.family, .v6)
        for garbage in ["", " 192.0.2.1", "192.0.2.1 ", "192.0.2", "192.0.2.256", "192.0.2.1:443", "[::1]", "::1%eth0",
            "localhost", "unknown", "1.2.3.4/32", "0x7f.0.0.1", "2001:db8:::1"]
        {
            XCTAssertNil(IPAddress(garbage), garbage)
        }
    }

    func testThrottleGroups() {
        XCTAssertEqual(IPAddress("192.0.2.1")?.throttleGroup, "192.0.2.1")
        XCTAssertEqual(IPAddress("2001:db8:1:2:3:4:5:6")?.throttleGroup, "2001:db8:1:2::/64")
        XCTAssertEqual(IPAddress("::ffff:10.1.2.3")?.throttleGroup, "10.1.2.3")
    }

    func testNetworks() throws {
        let eight = try IPNetwork(parsing: "10.0.0.0/8")
        XCTAssertTrue(eight.contains(IPAddress("10.255.0.1")!))
        XCTAssertTrue(eight.contains(IPAddress("::ffff:10.0.0.1")!))
        XCTAssertFalse(eight.contains(IPAddress("11.0.0.1")!))
        XCTAssertFalse(eight.contains(IPAddress("::a00:1")!), "an IPv6 address is not in an IPv4 block")
        XCTAssertEqual(try IPNetwork(parsing: "192.0.2.7").description, "192.0.2.7/32")
        XCTAssertEqual(try IPNetwork(parsing: "::ffff:10.0.0.0/104").description, "10.0.0.0/8")
        XCTAssertEqual(try IPNetwork(parsing: "0.0.0.0/0").prefixLength, 0)
        let v6 = try IPNetwork(parsing: "2001:db8::/32")
        XCTAssertTrue(v6.contains(IPAddress("2001:db8:ffff::1")!))
        XCTAssertFalse(v6.contains(IPAddress("2001:db9::1")!))
        XCTAssertFalse(v6.contains(IPAddress("10.0.0.1")!))
        XCTAssertTrue(try IPNetwork(parsing: "::/0").contains(IPAddress("10.0.0.1")!), "::/0 holds IPv4-mapped addresses")
        XCTAssertThrowsError(try IPNetwork(parsing: "10.0.0.1/8")) { error in
            XCTAssertEqual(error as? IPNetwork.ParseError, .hostBitsSet(network: try! IPNetwork(parsing: "10.0.0.0/8")))
        }
        for bad in ["10.0.0.0/33", "10.0.0.0/", "10.0.0.0/-1", "10.0.0.0/+8", "10.0.0.0/8/8", "::/129", "10.0.0.0/ 8"] {
            XCTAssertThrowsError(try IPNetwork(parsing: bad), bad)
        }
    }

    func testGarbageIsRefusedNamingTheKeyAndTheEntry() {
        for (entry, hint) in [
            ("proxy.example", "not an IP address"), ("10.0.0.0/40", "prefix length"), ("10.0.0.1/8", "10.0.0.0/8"),
        ] {
            XCTAssertThrowsError(try TrustedProxies(["127.0.0.1", entry])) { error in
                let message = (error as? ConfigurationError)?.description ?? ""
                XCTAssertTrue(message.contains("trusted_proxies"), message)
                XCTAssertTrue(message.contains(entry), message)
                XCTAssertTrue(message.contains(hint), message)
            }
        }
    }

    func testConfigurationValidationChecksTheProxies() throws {
        var configuration = BrokerConfiguration()
        try configuration.set("trusted_proxies", to: "127.0.0.1, 10.0.0.0/8, ::1", source: "test")
        XCTAssertNoThrow(try configuration.validate())
        try configuration.set("trusted_proxies", to: "127.0.0.1, nonsense", source: "test")
        XCTAssertThrowsError(try configuration.validate()) { error in
            XCTAssertTrue("\(error)".contains("nonsense"))
        }
    }

    func testAnUntrustedPeerIsTheClientWhateverItForwards() throws {
        let proxies = try TrustedProxies(["10.0.0.0/8"])
        XCTAssertEqual(proxies.clientIP(peer: "198.51.100.1", forwardedFor: ["203.0.113.9"]), "198.51.100.1")
        XCTAssertEqual(proxies.clientIP(peer: "::ffff:198.51.100.1", forwardedFor: []), "198.51.100.1")
        XCTAssertEqual(try TrustedProxies([]).clientIP(peer: "127.0.0.1", forwardedFor: ["203.0.113.9"]), "127.0.0.1")
        XCTAssertNil(proxies.clientIP(peer: nil, forwardedFor: ["203.0.113.9"]), "no peer, no client IP")
    }

    func testATrustedPeerNamesTheClient() throws {
        let proxies = try TrustedProxies(["10.0.0.0/8", "2001:db8:ffff::/48"])
        XCTAssertEqual(proxies.clientIP(peer: "10.0.0.5", forwardedFor: ["203.0.113.9"]), "203.0.113.9")
        XCTAssertEqual(proxies.clientIP(peer: "10.0.0.5", forwardedFor: ["2001:DB8::7"]), "2001:db8::7")
        XCTAssertEqual(proxies.clientIP(peer: "10.0.0.5", forwardedFor: ["::ffff:203.0.113.9"]), "203.0.113.9")
        // The rightmost untrusted entry: what the client wrote on the left proves nothing.
        XCTAssertEqual(
            proxies.clientIP(peer: "10.0.0.5", forwardedFor: ["1.1.1.1, 203.0.113.9 , 10.0.0.7,2001:db8:ffff::1"]),
            "203.0.113.9")
        // Several header lines are one list, in order.
        XCTAssertEqual(proxies.clientIP(peer: "10.0.0.5", forwardedFor: ["1.1.1.1", "203.0.113.9", "10.0.0.7"]), "203.0.113.9")
        // Every hop trusted: the farthest one.
        XCTAssertEqual(proxies.clientIP(peer: "10.0.0.5", forwardedFor: ["10.9.9.9, 10.0.0.7"]), "10.9.9.9")
        XCTAssertEqual(proxies.clientIP(peer: "10.0.0.5", forwardedFor: []), "10.0.0.5")
    }

    func testAMalformedHopStopsAtThePeer() throws {
        let proxies = try TrustedProxies(["10.0.0.0/8"])
        for header in ["unknown", "203.0.113.9:443", "1.1.1.1, garbage", "[2001:db8::1]", "1.1.1.1, , x"] {
            XCTAssertEqual(proxies.clientIP(peer: "10.0.0.5", forwardedFor: [header]), "10.0.0.5", header)
        }
        // Garbage left of the first untrusted hop is never looked at.
        XCTAssertEqual(proxies.clientIP(peer: "10.0.0.5", forwardedFor: ["garbage, 203.0.113.9"]), "203.0.113.9")
    }
}
