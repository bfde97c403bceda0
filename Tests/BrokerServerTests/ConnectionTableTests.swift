import BrokerConnections
import NIOCore
import XCTest

/// The connection cap's policy, with made-up times: who is refused, who is closed to make room.
final class ConnectionTableTests: XCTestCase {
    static func at(_ second: Int64) -> NIODeadline { .uptimeNanoseconds(UInt64(second) * 1_000_000_000) }

    func admitted(_ admission: ConnectionTable<String>.Admission, file: StaticString = #filePath, line: UInt = #line)
        -> (ConnectionTable<String>.ID, [String])?
    {
        guard case .admitted(let id, let evicted) = admission else {
            XCTFail("refused: \(admission)", file: file, line: line)
            return nil
        }
        return (id, evicted)
    }

    func testAtTheCapTheConnectionWaitingLongestIsClosedNotTheNewOne() throws {
        var table = ConnectionTable<String>(maximum: 3, maximumPerAddress: 3)
        let a = try XCTUnwrap(admitted(table.admit("a", address: "10.0.0.1", at: Self.at(1))))
        let b = try XCTUnwrap(admitted(table.admit("b", address: "10.0.0.2", at: Self.at(2))))
        _ = try XCTUnwrap(admitted(table.admit("c", address: "10.0.0.3", at: Self.at(3))))
        // a answered a request at 10 and waits for the next since then; b has waited since 2.
        table.update(a.0, to: .waiting(since: Self.at(10)))
        XCTAssertEqual(try XCTUnwrap(admitted(table.admit("d", address: "10.0.0.4", at: Self.at(11)))).1, ["b"])
        XCTAssertEqual(try XCTUnwrap(admitted(table.admit("e", address: "10.0.0.5", at: Self.at(12)))).1, ["c"])
        XCTAssertEqual(table.count, 3)
        XCTAssertNil(table.forget(b.0), "an evicted connection is already forgotten")
    }

    func testConnectionsBeingAnsweredAreNeverClosedToMakeRoomAndReadersGoAfterWaiters() throws {
        var table = ConnectionTable<String>(maximum: 3, maximumPerAddress: 3)
        let a = try XCTUnwrap(admitted(table.admit("a", address: "10.0.0.1", at: Self.at(10))))
        let b = try XCTUnwrap(admitted(table.admit("b", address: "10.0.0.2", at: Self.at(20))))
        _ = try XCTUnwrap(admitted(table.admit("c", address: "10.0.0.3", at: Self.at(30))))
        table.update(a.0, to: .answering)
        table.update(b.0, to: .readingBody(since: Self.at(21)))
        // c has waited for a request for less time than b has read its body, but waiting goes first.
        let d = try XCTUnwrap(admitted(table.admit("d", address: "10.0.0.4", at: Self.at(40))))
        XCTAssertEqual(d.1, ["c"])
        table.update(d.0, to: .answering)
        let e = try XCTUnwrap(admitted(table.admit("e", address: "10.0.0.5", at: Self.at(50))))
        XCTAssertEqual(e.1, ["b"])
        table.update(e.0, to: .answering)
        guard case .refused(.capacity) = table.admit("f", address: "10.0.0.6", at: Self.at(60)) else {
            return XCTFail("every connection is being answered: the new one must be refused")
        }
        XCTAssertEqual(table.count, 3)
    }

    func testPastTheAddressCapANewConnectionIsRefusedAndEvictsNobody() throws {
        var table = ConnectionTable<String>(maximum: 4, maximumPerAddress: 2)
        _ = try XCTUnwrap(admitted(table.admit("a1", address: "10.0.0.1", at: Self.at(1))))
        let a2 = try XCTUnwrap(admitted(table.admit("a2", address: "10.0.0.1", at: Self.at(2))))
        guard case .refused(.perAddress) = table.admit("a3", address: "10.0.0.1", at: Self.at(3)) else {
            return XCTFail("a third connection from one address must be refused")
        }
        XCTAssertEqual(table.count, 2)
        XCTAssertEqual(table.count(from: "10.0.0.1"), 2)
        // Another address is not affected, and a closed connection gives its address room again.
        _ = try XCTUnwrap(admitted(table.admit("b1", address: "10.0.0.2", at: Self.at(4))))
        table.forget(a2.0)
        XCTAssertEqual(table.count(from: "10.0.0.1"), 1)
        _ = try XCTUnwrap(admitted(table.admit("a4", address: "10.0.0.1", at: Self.at(5))))
    }

    func testAnExemptPeerIsCappedOnlyByTheTotal() throws {
        var table = ConnectionTable<String>(maximum: 3, maximumPerAddress: 1)
        for (index, name) in ["p1", "p2", "p3"].enumerated() {
            _ = try XCTUnwrap(admitted(table.admit(name, address: "10.0.0.9", exemptFromAddressCap: true, at: Self.at(Int64(index)))))
        }
        XCTAssertEqual(try XCTUnwrap(admitted(table.admit("p4", address: "10.0.0.9", exemptFromAddressCap: true, at: Self.at(9)))).1, ["p1"])
    }

    func testDefaultCapsFollowTheDescriptorLimit() {
        XCTAssertEqual(ConnectionLimits(descriptorLimit: 128).maximumConnections, 64)
        XCTAssertEqual(ConnectionLimits(descriptorLimit: 128).maximumConnectionsPerAddress, 16)
        XCTAssertEqual(ConnectionLimits(descriptorLimit: 1024).maximumConnections, 896)
        XCTAssertEqual(ConnectionLimits(descriptorLimit: 1024).maximumConnectionsPerAddress, 224)
        XCTAssertEqual(ConnectionLimits(descriptorLimit: 1 << 20).maximumConnections, ConnectionLimits.defaultConnectionCeiling)
        XCTAssertEqual(ConnectionLimits(descriptorLimit: 16).maximumConnections, 8)
        XCTAssertNil(ConnectionLimits(descriptorLimit: 1024).problem)
        var limits = ConnectionLimits(descriptorLimit: 1024)
        limits.maximumConnectionsPerAddress = 2000
        XCTAssertNotNil(limits.problem)
    }
}
