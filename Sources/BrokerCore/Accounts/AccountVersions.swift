/// Which of an account's credentials is current: advanced whenever what lets someone sign in as
/// the account changes (a password set or reset, a GitHub link changed by an administrator).
/// A login remembers the version it read together with the password hash; its session starts
/// only if that is still the account's version when the session is recorded.
public struct CredentialVersion: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    public var rawValue: Int64

    public init(rawValue: Int64) {
        self.rawValue = rawValue
    }

    /// Every account starts here (and every account that existed before versions did).
    public static let initial = CredentialVersion(rawValue: 1)

    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }
    public var description: String { "\(rawValue)" }
}

/// Which generation of an account's sessions is alive: advanced by everything that ends all of
/// them at once (sign out everywhere, a password reset, disabling the account). A session
/// records the version it started under and is good only while the account still has it, so
/// re-enabling an account revives nothing, and a login that was under way when the sessions
/// were ended does not start one.
public struct SessionVersion: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    public var rawValue: Int64

    public init(rawValue: Int64) {
        self.rawValue = rawValue
    }

    public static let initial = SessionVersion(rawValue: 1)

    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }
    public var description: String { "\(rawValue)" }
}

/// An account's versions as one value: what a login read, what a session records, what the
/// store holds now. A session is good only while its versions equal the account's.
public struct AccountVersions: Hashable, Sendable, CustomStringConvertible {
    public var credential: CredentialVersion
    public var session: SessionVersion

    public init(credential: CredentialVersion, session: SessionVersion) {
        self.credential = credential
        self.session = session
    }

    public static let initial = AccountVersions(credential: .initial, session: .initial)

    public var description: String { "credential \(credential), session \(session)" }
}
