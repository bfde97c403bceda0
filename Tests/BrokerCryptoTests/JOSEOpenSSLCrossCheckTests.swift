import BrokerCrypto
import Foundation
import XCTest

/// Cross-checks against an independent implementation: the `openssl` command line verifies
/// what we sign (from our SPKI PEM) and signs what we verify (from our PKCS#8 PEM).
final class JOSEOpenSSLCrossCheckTests: XCTestCase {
    private var directory: URL!

    override func setUpWithError() throws {
        guard Self.openssl != nil else { throw XCTSkip("the openssl command is not installed") }
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("jose-openssl-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        if let directory { try? FileManager.default.removeItem(at: directory) }
    }

    func testOpenSSLVerifiesOurTokens() throws {
        for algorithm in JWSAlgorithm.allCases {
            let key = try PrivateKey.generate(algorithm)
            let token = try JWSSigner(key: key, kid: key.publicKey.thumbprint).sign(payload: Array(#"{"sub":"alice"}"#.utf8))
            let parts = token.split(separator: ".")
            let signingInput = Array("\(parts[0]).\(parts[1])".utf8)
            let signature = try XCTUnwrap(Base64URL.decode(parts[2]))

            try write(key.publicKey.spkiPEM(), to: "pub.pem")
            try write(signingInput, to: "input")
            try write(Self.opensslSignature(signature, algorithm), to: "sig")
            try write(Array("x".utf8) + signingInput, to: "tampered")

            let accepted = try runOpenSSL(verifyArguments(algorithm, input: "input"))
            XCTAssertEqual(accepted.status, 0, "\(algorithm): \(accepted.output)")
            XCTAssertTrue(accepted.output.contains("Verified"), "\(algorithm): \(accepted.output)")
            let rejected = try runOpenSSL(verifyArguments(algorithm, input: "tampered"))
            XCTAssertNotEqual(rejected.status, 0, "\(algorithm): openssl accepted a tampered input")
        }
    }

    func testWeVerifyWhatOpenSSLSigns() throws {
        for algorithm in JWSAlgorithm.allCases {
            let key = try PrivateKey.generate(algorithm)
            let header = Base64URL.encode(Array(#"{"alg":"\#(algorithm.rawValue)"}"#.utf8))
            let payload = Base64URL.encode(Array(#"{"sub":"bob"}"#.utf8))
            try write(key.pkcs8PEM(), to: "key.pem")
            try write(Array("\(header).\(payload)".utf8), to: "input")
            let arguments: [String] = switch algorithm {
            case .edDSA, .ed25519: ["pkeyutl", "-sign", "-inkey", path("key.pem"), "-rawin", "-in", path("input"), "-out", path("sig")]
            case .rs256, .es256: ["dgst", "-sha256", "-sign", path("key.pem"), "-out", path("sig"), path("input")]
            }
            let result = try runOpenSSL(arguments)
            XCTAssertEqual(result.status, 0, "\(algorithm): \(result.output)")
            let produced = [UInt8](try Data(contentsOf: directory.appendingPathComponent("sig")))
            var signature = algorithm == .es256 ? try Self.rawFromDER(produced) : produced
            if algorithm == .es256, !JOSEMalleabilityTests.isLowS(signature) {
                // OpenSSL signs with either S; we accept the low one only.
                let highS = "\(header).\(payload).\(Base64URL.encode(signature))"
                XCTAssertFalse(try CompactJWS.parse(highS).verify(with: key.publicKey))
                signature = JOSEMalleabilityTests.otherS(signature)
            }
            let token = "\(header).\(payload).\(Base64URL.encode(signature))"
            let jws = try CompactJWS.parse(token)
            XCTAssertTrue(jws.verify(with: key.publicKey), "\(algorithm)")
        }
    }

    // MARK: - Helpers

    private static let openssl: String? = {
        let paths = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":")
        return paths.map { "\($0)/openssl" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }()

    private func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    private func write(_ text: String, to name: String) throws {
        try write(Array(text.utf8), to: name)
    }

    private func write(_ bytes: [UInt8], to name: String) throws {
        try Data(bytes).write(to: directory.appendingPathComponent(name))
    }

    private func verifyArguments(_ algorithm: JWSAlgorithm, input: String) -> [String] {
        switch algorithm {
        case .edDSA, .ed25519:
            ["pkeyutl", "-verify", "-pubin", "-inkey", path("pub.pem"), "-rawin", "-in", path(input), "-sigfile", path("sig")]
        case .rs256, .es256:
            ["dgst", "-sha256", "-verify", path("pub.pem"), "-signature", path("sig"), path(input)]
        }
    }

    private func runOpenSSL(_ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try XCTUnwrap(Self.openssl))
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: output, as: UTF8.self))
    }

    /// OpenSSL wants ECDSA signatures in DER; JOSE uses R||S.
    private static func opensslSignature(_ signature: [UInt8], _ algorithm: JWSAlgorithm) -> [UInt8] {
        guard algorithm == .es256 else { return signature }
        return JOSEDER.sequence([JOSEDER.integer(Array(signature[0..<32])), JOSEDER.integer(Array(signature[32..<64]))])
    }

    /// Reads SEQUENCE { INTEGER r, INTEGER s } into 64-byte R||S.
    private static func rawFromDER(_ der: [UInt8]) throws -> [UInt8] {
        var index = 2
        XCTAssertEqual(der[0], 0x30)
        XCTAssertLessThan(der[1], 0x80)
        var output: [UInt8] = []
        for _ in 0..<2 {
            XCTAssertEqual(der[index], 0x02)
            let length = Int(der[index + 1])
            let integer = Array(der[(index + 2)..<(index + 2 + length)].drop { $0 == 0 })
            XCTAssertLessThanOrEqual(integer.count, 32)
            output += [UInt8](repeating: 0, count: 32 - integer.count) + integer
            index += 2 + length
        }
        XCTAssertEqual(index, der.count)
        return output
    }
}
