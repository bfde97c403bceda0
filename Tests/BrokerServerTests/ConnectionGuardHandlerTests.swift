import HTTPTypes
import Logging
import NIOCore
import NIOEmbedded
import NIOHTTP1
import NIOHTTPTypes
import XCTest

@testable import BrokerConnections

/// One connection's deadlines, on an embedded channel whose clock the test moves.
final class ConnectionGuardHandlerTests: XCTestCase {
    static var limits: ConnectionLimits {
        var limits = ConnectionLimits(descriptorLimit: 1024)
        limits.headerTimeout = .seconds(10)
        limits.bodyTimeout = .seconds(30)
        limits.idleTimeout = .seconds(60)
        return limits
    }

    /// Every channel a test opened: finished and its loop shut down in `tearDown`. An embedded
    /// channel left open keeps its pipeline alive, and so does one closed from inside
    /// `channelActive` (a refused connection): the pipeline's teardown then waits in the embedded
    /// loop's queue for a `run()` nobody calls (LeakSanitizer reports both).
    private var channels: [EmbeddedChannel] = []

    override func tearDown() {
        for channel in channels {
            _ = try? channel.finish()
            try? channel.embeddedEventLoop.syncShutdownGracefully()
        }
        channels = []
        super.tearDown()
    }

    func connection(_ registry: ConnectionRegistry? = nil, from address: String = "10.0.0.1") throws -> EmbeddedChannel {
        let registry = registry ?? ConnectionRegistry(limits: Self.limits)
        let channel = EmbeddedChannel(
            handler: ConnectionGuardHandler(registry: registry, limits: Self.limits, logger: Logger(label: "test")))
        channel.remoteAddress = try SocketAddress(ipAddress: address, port: 40000)
        try channel.connect(to: SocketAddress(ipAddress: address, port: 40000)).wait()
        channels.append(channel)
        return channel
    }

    static let head = HTTPRequestPart.head(HTTPRequest(method: .post, scheme: nil, authority: "x", path: "/api/org_token/"))

    func testTheHeaderDeadlineCountsFromTheStartWhateverTrickles() throws {
        let channel = try connection()
        for _ in 0..<9 {
            channel.embeddedEventLoop.advanceTime(by: .seconds(1))
            channel.pipeline.fireChannelReadComplete()  // a byte of a head that never ends
        }
        XCTAssertTrue(channel.isActive)
        channel.embeddedEventLoop.advanceTime(by: .seconds(1))
        XCTAssertFalse(channel.isActive, "closed 10 s after it opened")
    }

    func testTheBodyDeadlineCountsFromTheHead() throws {
        let channel = try connection()
        channel.embeddedEventLoop.advanceTime(by: .seconds(5))
        try channel.writeInbound(Self.head)
        channel.embeddedEventLoop.advanceTime(by: .seconds(29))
        try channel.writeInbound(HTTPRequestPart.body(ByteBuffer(string: "{")))
        XCTAssertTrue(channel.isActive, "the header deadline no longer applies once the head is in")
        channel.embeddedEventLoop.advanceTime(by: .seconds(1))
        XCTAssertFalse(channel.isActive, "closed 30 s after the head")
    }

    func testARequestBeingAnsweredHasNoDeadlineAndTheIdleTimeoutFollowsTheAnswer() throws {
        let channel = try connection()
        try channel.writeInbound(Self.head)
        try channel.writeInbound(HTTPRequestPart.end(nil))
        channel.embeddedEventLoop.advanceTime(by: .seconds(3600))
        XCTAssertTrue(channel.isActive, "a slow answer is not the client's fault")
        try channel.writeOutbound(HTTPResponsePart.head(HTTPResponse(status: .ok)))
        try channel.writeOutbound(HTTPResponsePart.end(nil))
        channel.embeddedEventLoop.advanceTime(by: .seconds(59))
        XCTAssertTrue(channel.isActive)
        // The next request's first bytes: it now has the header timeout, not the idle one's rest.
        channel.pipeline.fireChannelReadComplete()
        channel.embeddedEventLoop.advanceTime(by: .seconds(9))
        XCTAssertTrue(channel.isActive)
        channel.embeddedEventLoop.advanceTime(by: .seconds(1))
        XCTAssertFalse(channel.isActive, "closed 10 s after the next request began")
    }

    /// An application that answers on the event loop (`broker gateway`) writes its answer
    /// before the read that brought the request completes: the idle deadline of that answer
    /// stays, and only a later read that makes no part yet starts a header deadline.
    func testAnAnswerWrittenWithinTheReadOfItsRequestLeavesTheIdleDeadline() throws {
        let channel = try connection()
        channel.pipeline.fireChannelRead(Self.head)
        channel.pipeline.fireChannelRead(HTTPRequestPart.end(nil))
        try channel.writeOutbound(HTTPResponsePart.head(HTTPResponse(status: .ok)))
        try channel.writeOutbound(HTTPResponsePart.end(nil))
        channel.pipeline.fireChannelReadComplete()
        channel.embeddedEventLoop.advanceTime(by: .seconds(59))
        XCTAssertTrue(channel.isActive, "idle for 59 s, not closed by a header timeout")
        channel.pipeline.fireChannelReadComplete()  // the next request's first bytes
        channel.embeddedEventLoop.advanceTime(by: .seconds(9))
        XCTAssertTrue(channel.isActive)
        channel.embeddedEventLoop.advanceTime(by: .seconds(1))
        XCTAssertFalse(channel.isActive, "closed 10 s after the next request began")
    }

    /// `broker gateway`'s pipeline carries NIO's HTTP/1 parts: the same deadlines.
    func testNIOsHTTP1PartsHaveTheSameDeadlines() throws {
        let channel = EmbeddedChannel(
            handler: HTTP1ConnectionGuardHandler(registry: ConnectionRegistry(limits: Self.limits), limits: Self.limits, logger: Logger(label: "test")))
        try channel.connect(to: SocketAddress(ipAddress: "10.0.0.1", port: 40000)).wait()
        channels.append(channel)
        channel.embeddedEventLoop.advanceTime(by: .seconds(9))
        try channel.writeInbound(HTTPServerRequestPart.head(HTTPRequestHead(version: .http1_1, method: .GET, uri: "/")))
        channel.embeddedEventLoop.advanceTime(by: .seconds(29))
        try channel.writeInbound(HTTPServerRequestPart.end(nil))
        channel.embeddedEventLoop.advanceTime(by: .seconds(3600))
        XCTAssertTrue(channel.isActive, "answering: no deadline")
        try channel.writeOutbound(HTTPServerResponsePart.head(HTTPResponseHead(version: .http1_1, status: .ok)))
        try channel.writeOutbound(HTTPServerResponsePart.end(nil))
        channel.embeddedEventLoop.advanceTime(by: .seconds(59))
        XCTAssertTrue(channel.isActive)
        channel.embeddedEventLoop.advanceTime(by: .seconds(1))
        XCTAssertFalse(channel.isActive, "closed 60 s after the answer")
    }

    func testAKeptAliveConnectionIsClosedAfterTheIdleTimeout() throws {
        let channel = try connection()
        try channel.writeInbound(Self.head)
        try channel.writeInbound(HTTPRequestPart.end(nil))
        try channel.writeOutbound(HTTPResponsePart.head(HTTPResponse(status: .ok)))
        try channel.writeOutbound(HTTPResponsePart.end(nil))
        channel.embeddedEventLoop.advanceTime(by: .seconds(59))
        XCTAssertTrue(channel.isActive)
        channel.embeddedEventLoop.advanceTime(by: .seconds(1))
        XCTAssertFalse(channel.isActive)
    }

    func testTheRegistryFollowsTheConnectionAndForgetsItWhenItCloses() throws {
        var limits = Self.limits
        limits.maximumConnectionsPerAddress = 1
        let registry = ConnectionRegistry(limits: limits)
        let first = try connection(registry, from: "10.0.0.1")
        XCTAssertEqual(registry.count, 1)
        let second = try connection(registry, from: "10.0.0.1")
        XCTAssertFalse(second.isActive, "past the per-address cap: closed at once")
        XCTAssertEqual(registry.count, 1)
        _ = try first.close().wait()
        XCTAssertEqual(registry.count, 0)
        let third = try connection(registry, from: "10.0.0.1")
        XCTAssertTrue(third.isActive, "room again once the first closed")
    }
}
