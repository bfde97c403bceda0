/// The broker's version, in one place: `broker --version` prints it and the
/// `broker_build_info{version}` metric carries it.
///
/// A constant in source, not `git describe`: SwiftPM runs no script at build time, and a build
/// from a source archive has no git history. Raise it when releasing.
public enum BrokerVersion {
    public static let current = "0.12.0"
}
