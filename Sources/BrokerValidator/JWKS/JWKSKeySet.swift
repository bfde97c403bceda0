import BrokerCrypto

/// The keys of one JWKS document that a verifier may use, by `kid`, each with the one algorithm
/// it declares (`PublicKey.algorithm`).
///
/// Building a set is tolerant per entry and strict per document: an entry it cannot use (an
/// unknown `kty` or `alg`, an `alg` that does not fit the key, RSA under 2048 bits, a point off
/// the curve, no `kid`, a `kid` published twice) is skipped and reported in `skipped`, so that
/// one odd key, perhaps of a newer algorithm, does not take down validation with the others;
/// but a document that is too large, not JSON, without a `keys` array, or without a single
/// usable key is refused whole, so that a broken response never replaces a good set.
///
/// ```swift
/// let set = try JWKSKeySet(document: bytes, maximumSize: 256 * 1024)
/// if let key = set.key(for: kid) { ... }
/// for entry in set.skipped { print("ignored \(entry.kid ?? "-"): \(entry.reason)") }
/// ```
public struct JWKSKeySet: Sendable {
    /// The usable keys by `kid`.
    public let keys: [String: PublicKey]
    /// The entries left out, and why.
    public let skipped: [SkippedEntry]

    /// One JWKS entry that was not usable, for the operator's log.
    ///
    /// ```swift
    /// for entry in set.skipped { logger.warning("JWKS entry skipped: \(entry)") }   // "k1: no alg"
    /// ```
    public struct SkippedEntry: Sendable, Equatable, CustomStringConvertible {
        /// The entry's `kid`, if it had a string one (shortened: a JWKS may be hostile).
        public let kid: String?
        public let reason: String

        /// Escaped (`LogText`): the kid and the reason may quote the hostile document.
        public var description: String { "\(kid.map { LogText.escaped($0) } ?? "(no kid)"): \(LogText.escaped(reason))" }
    }

    /// `kid`s longer than this are skipped: ours are 43-character thumbprints, and a megabyte
    /// `kid` would otherwise be hashed on every lookup.
    public static let maximumKeyIDLength = 256

    /// The key published under `kid`, if usable.
    public func key(for kid: String) -> PublicKey? { keys[kid] }

    /// Parses and checks a JWKS document.
    ///
    /// - Throws: `JWKSDocumentError` when the document as a whole cannot be used.
    public init(document bytes: [UInt8], maximumSize: Int) throws(JWKSDocumentError) {
        guard bytes.count <= maximumSize else {
            throw JWKSDocumentError("document of \(bytes.count) bytes exceeds the \(maximumSize)-byte limit")
        }
        let parsed: JSONValue
        do {
            parsed = try JSONParser.parse(bytes)
        } catch {
            throw JWKSDocumentError("document is not JSON: \(error)")
        }
        guard case .array(let entries)? = parsed.object?["keys"] else {
            throw JWKSDocumentError("document has no \"keys\" array")
        }
        var usable: [String: PublicKey] = [:]
        var duplicates: Set<String> = []
        var skipped: [SkippedEntry] = []
        for entry in entries {
            switch Self.read(entry) {
            case .usable(let kid, let key):
                if usable[kid] != nil || duplicates.contains(kid) {
                    // Two keys under one kid: which one a token meant is unknowable, so neither.
                    usable[kid] = nil
                    duplicates.insert(kid)
                    skipped.append(SkippedEntry(kid: kid, reason: "kid published more than once"))
                } else {
                    usable[kid] = key
                }
            case .skipped(let skip):
                skipped.append(skip)
            }
        }
        guard !usable.isEmpty else {
            throw JWKSDocumentError(
                "document has no usable key (\(skipped.map(\.description).joined(separator: "; ")))")
        }
        keys = usable
        self.skipped = skipped
    }

    private enum EntryOutcome {
        case usable(String, PublicKey)
        case skipped(SkippedEntry)
    }

    private static func read(_ entry: JSONValue) -> EntryOutcome {
        guard case .object(let members) = entry else {
            return .skipped(SkippedEntry(kid: nil, reason: "entry is not a JSON object"))
        }
        let kidValue = members["kid"]?.string
        let shownKid = kidValue.map { String($0.prefix(64)) }
        func skip(_ reason: String) -> EntryOutcome {
            .skipped(SkippedEntry(kid: shownKid, reason: reason))
        }
        guard let kid = kidValue, !kid.isEmpty else { return skip("no kid") }
        guard kid.utf8.count <= maximumKeyIDLength else { return skip("kid longer than \(maximumKeyIDLength) bytes") }
        // A key must say which algorithm it is for: the declared `alg` is the only one a token
        // signed by it may use.
        guard let alg = members["alg"]?.string else { return skip("no alg") }
        guard JWSAlgorithm(rawValue: alg) != nil else { return skip("unsupported alg \"\(alg.prefix(16))\"") }
        guard let kty = members["kty"]?.string else { return skip("no kty") }
        var strings: [String: String] = [:]
        for name in ["crv", "x", "y", "n", "e", "use"] {
            switch members[name] {
            case nil: continue
            case .string(let value)?: strings[name] = value
            default: return skip("\(name) is not a string")
            }
        }
        let jwk = JWK(
            kty: kty, crv: strings["crv"], x: strings["x"], y: strings["y"], n: strings["n"], e: strings["e"],
            kid: kid, alg: alg, use: strings["use"])
        do {
            // Checks kty against alg, `use`, RSA size and exponent, curve membership.
            return .usable(kid, try PublicKey(jwk: jwk))
        } catch {
            return skip("\(error)")
        }
    }
}

/// A JWKS document that cannot be used at all; the cache keeps its previous keys.
///
/// ```swift
/// do { _ = try JWKSKeySet(document: bytes, maximumSize: 1024) }
/// catch { print("JWKS refused: \(error)") }
/// ```
public struct JWKSDocumentError: Error, Sendable, Equatable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
