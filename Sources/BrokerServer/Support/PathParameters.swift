import BrokerCore
import Foundation
import Hummingbird

extension Parameters {
    /// A path parameter as the client meant it. The router captures raw segments, so without
    /// decoding a username such as `josé` (sent as `jos%C3%A9`) could never be addressed, and
    /// `ro%6Ft` would not name `root` as RFC 3986 section 6.2.2.2 says it does.
    ///
    /// ```swift
    /// let username = try context.parameters.decoded("username")
    /// ```
    package func decoded(_ name: String) throws -> String {
        let raw = try require(name)
        guard let value = raw.removingPercentEncoding else {
            throw BrokerError(.invalidRequest, "the path parameter \(name) is not percent-encoded UTF-8")
        }
        return value
    }
}
