import BrokerCrypto
import Foundation

/// An invitation to create an account at the portal (`portal_signup: invite`, or `open`), and
/// for an organization's invitation also to join it with a role. Whoever holds the code may use
/// it once, before it expires; the store keeps only the code's SHA-256, so that reading the
/// database (a backup, a replica's disk) gives no one a usable code.
///
/// ```swift
/// let (invitation, code) = try await accounts.createInvitation(
///     organization: "org1", role: .member, lifetime: Invitation.defaultLifetime, by: actor)
/// print(code)   // 7KQ2-M9XD-... shown once; invitation.id names it in lists and audit lines
/// ```
public struct Invitation: Sendable, Equatable {
    /// Random, shown in lists and audit lines, and never enough to use the invitation.
    public var id: String
    /// SHA-256 (hex) of the normalized code (``InvitationCode/hash(of:)``).
    public var codeHash: String
    /// nil: an account alone, no membership (only global admins make those).
    public var organizationID: Int64?
    /// The role the membership gets; `member` for an account-only invitation.
    public var role: Role
    /// nil for the operator (`cli`), or once the creator's account is deleted.
    public var createdBy: Int64?
    public var createdAt: Date
    public var expiresAt: Date
    /// When it was used; nil while it is still open.
    public var usedAt: Date?
    /// The account created with it; nil while unused, or once that account is deleted.
    public var usedBy: Int64?

    public init(
        id: String, codeHash: String, organizationID: Int64?, role: Role, createdBy: Int64?, createdAt: Date, expiresAt: Date,
        usedAt: Date? = nil, usedBy: Int64? = nil
    ) {
        self.id = id
        self.codeHash = codeHash
        self.organizationID = organizationID
        self.role = role
        self.createdBy = createdBy
        self.createdAt = createdAt
        self.expiresAt = expiresAt
        self.usedAt = usedAt
        self.usedBy = usedBy
    }

    /// Seven days: the callers' default (CLI `--expires`), long enough for an e-mail to be read.
    public static let defaultLifetime = 7 * 86_400
    /// From a minute to thirty days: a code that lives for months is a password nobody rotates.
    public static let lifetimeRange = 60...(30 * 86_400)

    /// Whether a sign-up at `date` may use it: unused and not yet expired (the same test as
    /// ``StoreTransaction/redeemInvitation(id:by:at:)``'s UPDATE, which is what decides).
    public func isOpen(at date: Date) -> Bool { usedAt == nil && expiresAt > date }
}

/// The code of an invitation: 128 random bits in Crockford's base32, grouped by four with
/// dashes so that it can be read out and typed. What is stored and compared is the SHA-256 of
/// its normalized form, so a code typed in lower case, without dashes or with spaces matches.
///
/// ```swift
/// let code = InvitationCode.generate()        // "7KQ2-M9XD-0FJ3-…-R4"
/// InvitationCode.hash(of: code.lowercased()) == InvitationCode.hash(of: code)   // true
/// ```
public enum InvitationCode {
    /// Crockford's alphabet: no I, L, O or U, so nothing reads as another symbol.
    static let alphabet = Array("0123456789ABCDEFGHJKMNPQRSTVWXYZ")
    /// 128 bits: as much as a session cookie's worth of guessing, and no throttle is needed.
    static let randomBytes = 16

    /// A fresh code: 26 symbols (130 bits, the last two zero) in groups of four.
    public static func generate() -> String {
        grouped(encode(SecureRandom.bytes(randomBytes)))
    }

    /// `bytes` in Crockford base32, most significant bit first, the last symbol padded with zeros.
    static func encode(_ bytes: [UInt8]) -> String {
        var symbols: [Character] = []
        var buffer = 0
        var bits = 0
        for byte in bytes {
            buffer = (buffer << 8) | Int(byte)
            bits += 8
            while bits >= 5 {
                bits -= 5
                symbols.append(alphabet[(buffer >> bits) & 31])
            }
            buffer &= (1 << bits) - 1
        }
        if bits > 0 { symbols.append(alphabet[(buffer << (5 - bits)) & 31]) }
        return String(symbols)
    }

    static func grouped(_ symbols: String) -> String {
        var groups: [Substring] = []
        var rest = Substring(symbols)
        while !rest.isEmpty {
            groups.append(rest.prefix(4))
            rest = rest.dropFirst(4)
        }
        return groups.joined(separator: "-")
    }

    /// What a person typed, as the code was generated: upper case, without dashes or spaces,
    /// and Crockford's look-alikes read as the digits they stand for (O → 0; I, L → 1), which
    /// the alphabet never produces.
    public static func normalized(_ typed: String) -> String {
        String(
            typed.uppercased().compactMap { character -> Character? in
                switch character {
                case "-", " ", "\t": nil
                case "O": "0"
                case "I", "L": "1"
                default: character
                }
            })
    }

    /// The SHA-256 (hex) of the normalized code: the only form the store ever holds.
    public static func hash(of code: String) -> String {
        Digest.sha256Hex(normalized(code))
    }

    /// A new invitation's id: 80 random bits, 16 lower-case symbols, never a prefix of an option
    /// on a command line (`broker invites revoke <id>`).
    static func newID() -> String {
        encode(SecureRandom.bytes(10)).lowercased()
    }
}
