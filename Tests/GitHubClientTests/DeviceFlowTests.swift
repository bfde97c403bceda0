import BrokerCore
import FakeGitHub
import Foundation
import GitHubClient
import XCTest

/// The OAuth device flow against the fake's state machine.
final class DeviceFlowTests: XCTestCase {
    var github: FakeGitHub!
    let clock = ManualWallClock()

    override func setUp() async throws {
        let clock = self.clock
        github = try await FakeGitHub.start(deviceInterval: 5, deviceExpiresIn: 60) { clock.now() }
    }

    override func tearDown() async throws {
        await github.stop()
    }

    func testPendingSlowDownThenAuthorized() async throws {
        let client = try github.client(clock: clock)
        let code = try await client.requestDeviceCode(scope: "read:org")
        XCTAssertEqual(code.interval, 5)
        XCTAssertEqual(code.expiresIn, 60)
        XCTAssertEqual(code.verificationURI, "\(github.webURL)/login/device")
        XCTAssertNil(code.verificationURIComplete)

        let request = try XCTUnwrap(github.requests(on: .deviceCode).first)
        XCTAssertEqual(request.method, "POST")
        XCTAssertEqual(request.headers["accept"], "application/json")
        XCTAssertEqual(request.headers["content-type"], "application/x-www-form-urlencoded")
        XCTAssertNil(request.headers["authorization"])
        XCTAssertEqual(request.body, "client_id=fake-client-id&scope=read%3Aorg")

        let first = try await client.pollDeviceAuthorization(deviceCode: code.deviceCode)
        XCTAssertEqual(first, .pending(interval: 5))
        clock.advance(by: 2)
        let second = try await client.pollDeviceAuthorization(deviceCode: code.deviceCode)
        XCTAssertEqual(second, .slowDown(interval: 10))
        clock.advance(by: 10)
        github.approveDevice(userCode: code.userCode, token: "gho_fromdevice")
        let third = try await client.pollDeviceAuthorization(deviceCode: code.deviceCode)
        XCTAssertEqual(third, .authorized(accessToken: "gho_fromdevice"))

        let poll = try XCTUnwrap(github.requests(on: .accessToken).last)
        XCTAssertEqual(poll.form["client_id"], "fake-client-id")
        XCTAssertEqual(poll.form["device_code"], code.deviceCode)
        XCTAssertEqual(poll.form["grant_type"], "urn:ietf:params:oauth:grant-type:device_code")
        XCTAssertEqual(poll.headers["accept"], "application/json")
    }

    func testExpiredDeviceCode() async throws {
        let client = try github.client(clock: clock)
        let code = try await client.requestDeviceCode(scope: "read:org")
        clock.advance(by: 61)
        let poll = try await client.pollDeviceAuthorization(deviceCode: code.deviceCode)
        XCTAssertEqual(poll, .expired)
    }

    func testDeniedAndUnknownCodes() async throws {
        let client = try github.client(clock: clock)
        let code = try await client.requestDeviceCode(scope: "read:org")
        github.denyDevice(userCode: code.userCode)
        let denied = try await client.pollDeviceAuthorization(deviceCode: code.deviceCode)
        XCTAssertEqual(denied, .denied)
        let unknown = try await client.pollDeviceAuthorization(deviceCode: "no such code")
        XCTAssertEqual(unknown, .failed(error: "incorrect_device_code"))
        XCTAssertEqual(github.requests(on: .accessToken).last?.form["device_code"], "no such code")
    }

    func testWrongClientIDIsAConfigurationFailure() async throws {
        let client = try github.client(clock: clock) { $0.clientID = "someone-else" }
        let error = await gitHubError { () async throws(GitHubError) in try await client.requestDeviceCode(scope: "read:org") }
        XCTAssertEqual(error, .unavailable("GitHub refused the device code request: incorrect_client_credentials"))
        let poll = try await client.pollDeviceAuthorization(deviceCode: "x")
        XCTAssertEqual(poll, .failed(error: "incorrect_client_credentials"))
    }

    func testDeviceFlowFaults() async throws {
        let client = try github.client(clock: clock)
        github.inject(.status(503), on: .deviceCode, times: 1)
        assertUnavailable(await gitHubError { () async throws(GitHubError) in try await client.requestDeviceCode(scope: "read:org") })
        github.inject(.status(429), on: .accessToken, times: 1)
        let limited = await gitHubError { () async throws(GitHubError) in try await client.pollDeviceAuthorization(deviceCode: "x") }
        guard case .rateLimited = limited else { return XCTFail("got \(String(describing: limited))") }
    }
}
