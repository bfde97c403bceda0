import BrokerCore
import FakeGitHub
import GitHubClient
import XCTest

/// The error `body` throws, or nil (and a failure) if it returns.
func gitHubError<Value>(
    _ body: () async throws(GitHubError) -> Value, file: StaticString = #filePath, line: UInt = #line
) async -> GitHubError? {
    do {
        let value = try await body()
        XCTFail("expected an error, got \(value)", file: file, line: line)
        return nil
    } catch {
        return error
    }
}

func assertUnavailable(_ error: GitHubError?, file: StaticString = #filePath, line: UInt = #line) {
    guard case .unavailable = error else {
        return XCTFail("expected .unavailable, got \(String(describing: error))", file: file, line: line)
    }
}

func assertMalformed(_ error: GitHubError?, file: StaticString = #filePath, line: UInt = #line) {
    guard case .malformedResponse = error else {
        return XCTFail("expected .malformedResponse, got \(String(describing: error))", file: file, line: line)
    }
}

extension FakeGitHub {
    /// A client for this fake, with test-sized timeouts.
    func client(
        clock: any WallClock = SystemWallClock(), totalTimeout: Duration = .seconds(5),
        configure: (inout LibcurlGitHubClient.Configuration) -> Void = { _ in }
    ) throws -> LibcurlGitHubClient {
        var configuration = LibcurlGitHubClient.Configuration(
            apiURL: apiURL, webURL: webURL, clientID: clientID, connectTimeout: .seconds(1),
            totalTimeout: totalTimeout, userAgent: "broker-tests/1.0")
        configure(&configuration)
        return try LibcurlGitHubClient(configuration: configuration, clock: clock)
    }
}
