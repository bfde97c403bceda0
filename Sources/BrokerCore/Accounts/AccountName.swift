import Foundation

/// A username or organization name as a person reads it: the one way names are compared in the
/// store, the login throttle, the CLI, the admin API, imports and accounts admitted by GitHub.
///
/// The profile follows RFC 8265's UsernameCaseMapped class:
/// 1. fullwidth and halfwidth forms become their ordinary forms (`ａｌｉｃｅ` is `alice`);
/// 2. NFC (a composed and a decomposed `josé` are one name);
/// 3. ``display`` is that text, case kept: what is stored for a new account and shown;
/// 4. ``key`` is `display` case-folded (Unicode *full* case folding, CaseFolding.txt C + F, so
///    `Straße` and `STRASSE` are one name; RFC 8265 uses toLowerCase, which leaves them apart)
///    and NFC again: what lookups and the throttle compare;
/// 5. ``skeleton`` is the Unicode TS #39 skeleton of `key`: two names with one skeleton look
///    alike (`alice` with a Cyrillic `а`, `paypa1` and `paypal`), and the store refuses the
///    second.
///
/// A valid username has only letters, digits, combining marks after a letter or digit, and
/// `@.+-_`: no control, format, private-use or unassigned code point, nothing invisible
/// (default-ignorable: joiners, variation selectors, tag characters), no space. Its `display`
/// and its `key` each have at most ``maximumCodePoints`` code points and ``maximumBytes`` bytes
/// of UTF-8; longer names are refused, never truncated. Names mixing scripts are allowed
/// (`Zoë-東京` is a real name); the skeleton check is what stops a mixed-script look-alike of an
/// existing name.
///
/// ```swift
/// let name = try AccountName(username: "Jose\u{301}")   // display "José", key "josé"
/// AccountName.key(of: "JOSÉ") == name.key                  // true
/// ```
public struct AccountName: Sendable, Hashable {
    /// The name as stored and shown: width-mapped and NFC, case kept.
    public let display: String
    /// The name as compared: ``display`` case-folded, NFC.
    public let key: String
    /// The TS #39 skeleton of ``key``: equal skeletons look alike.
    public let skeleton: String

    /// Django's limit, which counts code points: the accounts we import already follow it.
    public static let maximumCodePoints = 150
    /// Bytes of UTF-8: a name must fit log lines, token claims and the gateways' headers, and
    /// 150 letters piled with combining marks must not make an 18 KB name.
    public static let maximumBytes = 255

    /// Validates a username against the profile.
    /// - Throws: ``BrokerError`` `invalid_username`, saying what is wrong.
    public init(username text: String) throws {
        // Bounds the work before normalizing: nothing this long can pass.
        guard text.utf8.count <= 4 * Self.maximumBytes else {
            throw BrokerError(.invalidUsername, Self.lengthRule)
        }
        let display = Self.widthMapped(text).precomposedStringWithCanonicalMapping
        var previousIsBase = false
        for scalar in display.unicodeScalars {
            let category = scalar.properties.generalCategory
            if scalar.properties.isDefaultIgnorableCodePoint || scalar.properties.isWhitespace {
                throw BrokerError(
                    .invalidUsername,
                    "a username may contain only letters, digits and @.+-_: no spaces, nothing invisible (U+\(Self.hex(scalar)))")
            }
            switch category {
            case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter,
                .decimalNumber, .letterNumber, .otherNumber:
                previousIsBase = true
            case .nonspacingMark, .spacingMark, .enclosingMark:
                // A mark belongs to the letter or digit before it; alone it would sit on `@`.
                guard previousIsBase else {
                    throw BrokerError(
                        .invalidUsername, "a combining mark must follow a letter or digit (U+\(Self.hex(scalar)))")
                }
            default:
                guard "@.+-_".unicodeScalars.contains(scalar) else {
                    throw BrokerError(
                        .invalidUsername,
                        "a username may contain only letters, digits and @.+-_ (not U+\(Self.hex(scalar)))")
                }
                previousIsBase = false
            }
        }
        let key = Self.folded(display).precomposedStringWithCanonicalMapping
        for form in [display, key] {
            guard !form.isEmpty, form.unicodeScalars.count <= Self.maximumCodePoints,
                form.utf8.count <= Self.maximumBytes
            else {
                throw BrokerError(.invalidUsername, Self.lengthRule)
            }
        }
        self.display = display
        self.key = key
        self.skeleton = Self.skeleton(ofKey: key)
    }

    /// An organization name (ASCII letters, digits and `-_.`; see
    /// ``NamePolicy/validateOrganizationName(_:what:)``), compared without case and by skeleton
    /// like a username.
    public init(organization text: String, what: String = "an organization name") throws {
        try NamePolicy.validateOrganizationName(text, what: what)
        self.display = text
        self.key = Self.key(of: text)
        self.skeleton = Self.skeleton(ofKey: key)
    }

    /// The comparison key of any text, valid name or not: what a login, a lookup and the
    /// throttle compare. Never throws, so that a name typed at login that the profile refuses
    /// is simply one no account has.
    public static func key(of text: String) -> String {
        folded(widthMapped(text).precomposedStringWithCanonicalMapping).precomposedStringWithCanonicalMapping
    }

    /// The key and skeleton the store keeps for a name, valid under today's profile or not (a
    /// row from before it).
    public static func storedForms(of text: String) -> (key: String, skeleton: String) {
        let key = Self.key(of: text)
        return (key, Self.skeleton(ofKey: key))
    }

    static let lengthRule =
        "a username has 1 to \(maximumCodePoints) characters and at most \(maximumBytes) bytes of UTF-8"

    // MARK: The mappings

    /// TS #39: NFD, each character replaced by its prototype, NFD again.
    static func skeleton(ofKey key: String) -> String {
        var mapped = String.UnicodeScalarView()
        for scalar in key.decomposedStringWithCanonicalMapping.unicodeScalars {
            if let prototype = Tables.confusables[scalar.value] {
                mapped.append(contentsOf: prototype)
            } else if !scalar.properties.isDefaultIgnorableCodePoint {
                mapped.append(scalar)
            }
        }
        return String(mapped).decomposedStringWithCanonicalMapping
    }

    static func folded(_ text: String) -> String {
        var folded = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            if let mapping = Tables.caseFolding[scalar.value] {
                folded.append(contentsOf: mapping)
            } else {
                folded.append(scalar)
            }
        }
        return String(folded)
    }

    static func widthMapped(_ text: String) -> String {
        var mapped = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            if let mapping = Tables.widthMapping[scalar.value] {
                mapped.append(contentsOf: mapping)
            } else {
                mapped.append(scalar)
            }
        }
        return String(mapped)
    }

    private static func hex(_ scalar: Unicode.Scalar) -> String {
        let digits = String(scalar.value, radix: 16, uppercase: true)
        return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }

    /// The generated tables, each parsed at its first use: a login needs only the small ones.
    private enum Tables {
        static let confusables = parse(UnicodeNameTables.confusables)
        static let caseFolding = parse(UnicodeNameTables.caseFolding)
        static let widthMapping = parse(UnicodeNameTables.widthMapping)

        private static func parse(_ table: String) -> [UInt32: [Unicode.Scalar]] {
            var mapping: [UInt32: [Unicode.Scalar]] = [:]
            for line in table.utf8.split(separator: UInt8(ascii: "\n")) {
                let values = line.split(separator: UInt8(ascii: " ")).compactMap { field in
                    UInt32(Substring(field), radix: 16)
                }
                guard let source = values.first else { continue }
                mapping[source] = values.dropFirst().compactMap { Unicode.Scalar($0) }
            }
            return mapping
        }
    }
}
