/// How the broker answers a store it cannot reach (``StoreError/unavailable(_:)``): 503
/// `store_unavailable` with `Retry-After`, in each route family's error shape. The request did
/// nothing; the same request may succeed once the database is back, without a restart.
///
/// ```swift
/// catch let error as StoreError where error.isUnavailable {
///     return JSONResponses.error(BrokerError(storeUnavailable: error), for: request)
/// }
/// ```
extension StoreError {
    /// Seconds a client is asked to wait before trying again.
    public static let unavailableRetryAfter = 5

    /// Whether this is ``unavailable(_:)``: the database cannot be reached now.
    public var isUnavailable: Bool {
        if case .unavailable = self { return true }
        return false
    }
}

extension BrokerError {
    /// The answer to an unreachable store. The engine's message stays in the server log: it may
    /// name hosts and ports the caller has no business knowing.
    public init(storeUnavailable error: StoreError) {
        self.init(
            .storeUnavailable, "the database cannot be reached; try again shortly",
            retryAfter: StoreError.unavailableRetryAfter)
    }
}

/// A store failure refusing an audited flow is recorded with the code it is answered with:
/// `store_unavailable` for an unreachable store, `internal_error` for the rest.
extension StoreError: AuditableFailure {
    public var auditCode: String {
        isUnavailable ? ErrorCode.storeUnavailable.rawValue : ErrorCode.internalError.rawValue
    }

    public var httpStatus: Int {
        isUnavailable ? ErrorCode.storeUnavailable.httpStatus : ErrorCode.internalError.httpStatus
    }
}
