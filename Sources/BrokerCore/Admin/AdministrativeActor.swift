/// Who performs an administrative action, and with what authority. Routes build one from a
/// verified broker session token; the CLI acts as the machine's ``operator``, who may do anything
/// (whoever can run `broker` can read the database anyway).
///
/// ```swift
/// let actor = AdministrativeActor(user: principal.user)
/// try await administration.approveMembership(organization: "org1", username: "bob", by: actor)
/// ```
public struct AdministrativeActor: Sendable, Equatable {
    /// For audit lines: the username, or `cli` for the operator.
    public var name: String
    /// The acting account; `nil` for the operator.
    public var userID: Int64?
    public var isGlobalAdmin: Bool
    /// The request (id, client IP) the action came with, for its audit line.
    public var context: AuditContext

    public init(user: User, context: AuditContext = .none) {
        name = user.username
        userID = user.id
        isGlobalAdmin = user.isAdmin
        self.context = context
    }

    private init(name: String, userID: Int64?, isGlobalAdmin: Bool) {
        self.name = name
        self.userID = userID
        self.isGlobalAdmin = isGlobalAdmin
        context = .none
    }

    /// The person at the machine running `broker` commands.
    public static let `operator` = AdministrativeActor(name: "cli", userID: nil, isGlobalAdmin: true)

    /// Someone at the portal's sign-up page: no account yet, no authority. Audit lines name the
    /// page (`signup`), as `cli` names the operator, never what was typed as a name.
    public static func signUpPage(context: AuditContext) -> AdministrativeActor {
        var actor = AdministrativeActor(name: "signup", userID: nil, isGlobalAdmin: false)
        actor.context = context
        return actor
    }

    /// - Throws: 403 ``ErrorCode/forbidden`` unless the actor is a global admin.
    public func requireGlobalAdmin(_ what: String) throws {
        guard isGlobalAdmin else { throw BrokerError(.forbidden, "only a broker admin may \(what)") }
    }

    /// The actor's authority inside one organization: `.admin` for global admins, otherwise the
    /// role of their active membership (`nil` without one).
    func authority(in organization: Organization, tx: any StoreTransaction) async throws -> Role? {
        if isGlobalAdmin { return .admin }
        guard let userID, let membership = try await tx.membership(organizationID: organization.id, userID: userID),
            membership.isActive
        else { return nil }
        return membership.role
    }

    /// - Throws: 403 ``ErrorCode/forbidden`` unless the actor is an owner or admin of the
    ///   organization (or a global admin). Returns the actor's authority.
    @discardableResult
    func requireManager(of organization: Organization, tx: any StoreTransaction) async throws -> Role {
        guard let role = try await authority(in: organization, tx: tx), role >= .owner else {
            throw BrokerError(.forbidden, "only owners and admins of \(organization.name) may manage its members")
        }
        return role
    }
}
