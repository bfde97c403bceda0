import Logging

/// The id of the request the current task serves, for the log lines of code that logs with a
/// logger of its own (the core services) rather than the request's: the logging backend's
/// metadata provider adds it to every line as `request_id`.
///
/// ```swift
/// LoggingSystem.bootstrap({ StreamLogHandler.standardError(label: $0, metadataProvider: $1) },
///                         metadataProvider: RequestLogMetadata.provider)
/// try await RequestLogMetadata.$requestID.withValue("abc-123") { try await service.login(...) }
/// ```
public enum RequestLogMetadata {
    /// The metadata key, the same in the request's logger and through the provider.
    public static let key = "request_id"

    @TaskLocal public static var requestID: String?

    public static let provider = Logger.MetadataProvider {
        guard let requestID else { return [:] }
        return [key: .string(requestID)]
    }
}
