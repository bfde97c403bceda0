import BrokerCrypto
import Foundation
import XCTest

/// Compact JWS signing, parsing and verification, including hostile input.
final class JOSEJWSTests: XCTestCase {
    private static let keys: [JWSAlgorithm: PrivateKey] = {
        var keys: [JWSAlgorithm: PrivateKey] = [:]
        for algorithm in JWSAlgorithm.allCases {
            keys[algorithm] = try! PrivateKey.generate(algorithm)
        }
        return keys
    }()

    private func key(_ algorithm: JWSAlgorithm) -> PrivateKey { Self.keys[algorithm]! }

    private let claims = Array(#"{"sub":"alice","exp":1767225600,"aud":["cluster-a"]}"#.utf8)

    func testSignParseVerifyForEveryAlgorithm() throws {
        for algorithm in JWSAlgorithm.allCases {
            let signer = JWSSigner(key: key(algorithm), kid: "key-1")
            let token = try signer.sign(payload: claims)
            let parts = token.split(separator: ".", omittingEmptySubsequences: false)
            XCTAssertEqual(parts.count, 3)
            XCTAssertEqual(
                String(decoding: try XCTUnwrap(Base64URL.decode(parts[0])), as: UTF8.self),
                #"{"alg":"\#(algorithm.rawValue)","typ":"at+jwt","kid":"key-1"}"#
            )
            let jws = try CompactJWS.parse(token)
            XCTAssertEqual(jws.payload, claims)
            XCTAssertEqual(jws.algorithm, algorithm)
            XCTAssertEqual(jws.keyID, "key-1")
            XCTAssertEqual(jws.type, "at+jwt")
            XCTAssertEqual(Array(jws.signingInput), Array("\(parts[0]).\(parts[1])".utf8))
            XCTAssertEqual(jws.signature.count, key(algorithm).signatureSize)
            XCTAssertTrue(jws.verify(with: key(algorithm).publicKey), "\(algorithm)")
            XCTAssertNoThrow(try jws.checkSignature(with: key(algorithm).publicKey))
        }
    }

    func testEmptyPayloadAndCustomType() throws {
        let signer = JWSSigner(key: key(.edDSA), kid: "k\"with\\quotes", type: "JWT")
        let token = try signer.sign(payload: [])
        XCTAssertTrue(token.contains(".."), token)
        let jws = try CompactJWS.parse(token)
        XCTAssertEqual(jws.payload, [])
        XCTAssertEqual(jws.keyID, "k\"with\\quotes")
        XCTAssertEqual(jws.type, "JWT")
        XCTAssertTrue(jws.verify(with: key(.edDSA).publicKey))
    }

    func testTamperedHeaderPayloadOrSignatureIsRejected() throws {
        for algorithm in JWSAlgorithm.allCases {
            let publicKey = key(algorithm).publicKey
            let token = try JWSSigner(key: key(algorithm), kid: "k").sign(payload: claims)
            let parts = token.split(separator: ".").map(String.init)

            let otherHeader = Base64URL.encode(Array(#"{"alg":"\#(algorithm.rawValue)","typ":"at+jwt","kid":"x"}"#.utf8))
            let otherPayload = Base64URL.encode(Array(#"{"sub":"mallory","exp":1767225600,"aud":["cluster-a"]}"#.utf8))
            var signature = try XCTUnwrap(Base64URL.decode(parts[2]))
            signature[signature.count / 2] ^= 0x01
            let tampered = [
                "\(otherHeader).\(parts[1]).\(parts[2])",
                "\(parts[0]).\(otherPayload).\(parts[2])",
                "\(parts[0]).\(parts[1]).\(Base64URL.encode(signature))",
            ]
            for candidate in tampered {
                let jws = try CompactJWS.parse(candidate)
                XCTAssertFalse(jws.verify(with: publicKey), "\(algorithm): \(candidate.prefix(40))")
                XCTAssertThrowsError(try jws.checkSignature(with: publicKey)) { error in
                    XCTAssertEqual(error as? JWSError, .invalidSignature)
                }
            }
        }
    }

    func testSignaturesOfTheWrongLengthOrContentAreRejected() throws {
        let message = Array("message".utf8)
        for algorithm in JWSAlgorithm.allCases {
            let publicKey = key(algorithm).publicKey
            let good = try key(algorithm).sign(message)
            XCTAssertTrue(publicKey.verify(signature: good, message: message))
            XCTAssertFalse(publicKey.verify(signature: [], message: message))
            XCTAssertFalse(publicKey.verify(signature: Array(good.dropLast()), message: message))
            XCTAssertFalse(publicKey.verify(signature: good + [0], message: message))
            XCTAssertFalse(publicKey.verify(signature: [0] + good, message: message))
            XCTAssertFalse(publicKey.verify(signature: [UInt8](repeating: 0, count: good.count), message: message))
            XCTAssertFalse(publicKey.verify(signature: [UInt8](repeating: 0xff, count: good.count), message: message))
            for _ in 0..<50 {
                let random = (0..<good.count).map { _ in UInt8.random(in: 0...255) }
                XCTAssertFalse(publicKey.verify(signature: random, message: message))
            }
        }
    }

    func testES256RejectsDEREncodedSignatures() throws {
        // Some libraries emit ASN.1 DER instead of R||S; JOSE requires exactly 64 bytes.
        let message = Array("message".utf8)
        let raw = try key(.es256).sign(message)
        XCTAssertEqual(raw.count, 64)
        let der = JOSEDER.sequence([JOSEDER.integer(Array(raw[0..<32])), JOSEDER.integer(Array(raw[32..<64]))])
        XCTAssertFalse(key(.es256).publicKey.verify(signature: der, message: message))
        // R and S each at or above the group order, or zero, must not verify.
        let order: [UInt8] = [
            0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
        ]
        XCTAssertFalse(key(.es256).publicKey.verify(signature: order + Array(raw[32...]), message: message))
        XCTAssertFalse(key(.es256).publicKey.verify(signature: Array(raw[..<32]) + order, message: message))
        XCTAssertFalse(key(.es256).publicKey.verify(signature: [UInt8](repeating: 0, count: 32) + Array(raw[32...]), message: message))
    }

    func testHeaderAlgorithmMustMatchTheKey() throws {
        // An ES256 token relabelled RS256 must not be checked with the EC key's algorithm.
        let token = try JWSSigner(key: key(.es256), kid: "k").sign(payload: claims)
        let parts = token.split(separator: ".").map(String.init)
        let relabelled = Base64URL.encode(Array(#"{"alg":"RS256","kid":"k"}"#.utf8)) + ".\(parts[1]).\(parts[2])"
        let jws = try CompactJWS.parse(relabelled)
        XCTAssertFalse(jws.verify(with: key(.es256).publicKey))
        XCTAssertThrowsError(try jws.checkSignature(with: key(.es256).publicKey)) { error in
            XCTAssertEqual(error as? JWSError, .algorithmMismatch(expected: .es256, found: "RS256"))
        }
        // Even a cryptographically valid signature is refused when the header names another
        // algorithm: the token must not choose how it is verified.
        let header = Base64URL.encode(Array(#"{"alg":"ES384","kid":"k"}"#.utf8))
        let signingInput = "\(header).\(parts[1])"
        let signature = try key(.es256).sign(Array(signingInput.utf8))
        let mislabelled = try CompactJWS.parse("\(signingInput).\(Base64URL.encode(signature))")
        XCTAssertTrue(mislabelled.signingInput.withUnsafeBytes { key(.es256).publicKey.verify(signature: signature, message: $0) })
        XCTAssertFalse(mislabelled.verify(with: key(.es256).publicKey))
        // A valid EdDSA token is not accepted by an ES256 key either.
        let ed = try CompactJWS.parse(try JWSSigner(key: key(.edDSA), kid: "k").sign(payload: claims))
        XCTAssertFalse(ed.verify(with: key(.es256).publicKey))
    }

    func testUnsecuredTokensAreRejected() {
        let header = Base64URL.encode(Array(#"{"alg":"none"}"#.utf8))
        let payload = Base64URL.encode(claims)
        assertParseFails("\(header).\(payload).", .malformed("empty signature"))
        let jws = try? CompactJWS.parse("\(header).\(payload).AAAA")
        XCTAssertNil(jws?.algorithm)
        XCTAssertEqual(jws?.verify(with: key(.rs256).publicKey), false)
    }

    func testMalformedTokensAreRejected() throws {
        let good = try JWSSigner(key: key(.es256), kid: "k").sign(payload: claims)
        let parts = good.split(separator: ".").map(String.init)
        let header = parts[0], payload = parts[1], signature = parts[2]
        func encoded(_ json: String) -> String { Base64URL.encode(Array(json.utf8)) }

        assertParseFails("", .malformed("expected 3 parts separated by '.'"))
        assertParseFails("\(header).\(payload)", .malformed("expected 3 parts separated by '.'"))
        assertParseFails("\(header).\(payload).\(signature).x", .malformed("more than 3 parts (JWE tokens are not accepted)"))
        assertParseFails("\(header).\(payload).\(signature).x.y", .malformed("more than 3 parts (JWE tokens are not accepted)"))
        assertParseFails(".\(payload).\(signature)", .malformed("empty header"))
        assertParseFails("\(header)=.\(payload).\(signature)", .invalidEncoding(part: "header"))
        assertParseFails("\(header).\(payload)=.\(signature)", .invalidEncoding(part: "payload"))
        assertParseFails("\(header).\(payload).\(signature)==", .invalidEncoding(part: "signature"))
        assertParseFails("\(header).\(payload).\(signature.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/"))+/",
                         .invalidEncoding(part: "signature"))
        assertParseFails("\(header) .\(payload).\(signature)", .invalidEncoding(part: "header"))
        assertParseFails("\(header).\(payload).\(signature)\n", .invalidEncoding(part: "signature"))
        assertParseFails("\(header).é.\(signature)", .invalidEncoding(part: "payload"))
        assertParseFails("\(encoded("[1]")).\(payload).\(signature)", .invalidHeader("not a JSON object"))
        assertParseFails("\(encoded("{}")).\(payload).\(signature)", .invalidHeader("missing \"alg\""))
        assertParseFails("\(encoded(#"{"alg":256}"#)).\(payload).\(signature)", .invalidHeader("missing \"alg\""))
        assertParseFails("\(encoded(#"{"alg":"ES256","crit":["exp"]}"#)).\(payload).\(signature)", .invalidHeader("unsupported \"crit\" extensions"))
        XCTAssertThrowsError(try CompactJWS.parse("\(encoded(#"{"alg":"ES256","alg":"none"}"#)).\(payload).\(signature)")) { error in
            guard case .invalidHeader(let reason) = error as? JWSError else { return XCTFail("\(error)") }
            XCTAssertTrue(reason.contains("duplicate member name"), reason)
        }
        XCTAssertThrowsError(try CompactJWS.parse("\(encoded("{\"alg\":\"ES256\"")).\(payload).\(signature)"))
        XCTAssertThrowsError(try CompactJWS.parse("\(encoded("not json")).\(payload).\(signature)"))
    }

    func testLengthLimit() throws {
        let token = try JWSSigner(key: key(.es256), kid: "k").sign(payload: claims)
        XCTAssertNoThrow(try CompactJWS.parse(token, maxLength: token.utf8.count))
        assertParseFails(token, .tooLong(limit: token.utf8.count - 1), maxLength: token.utf8.count - 1)
        let huge = String(repeating: "A", count: 20_000) + ".A.A"
        assertParseFails(huge, .tooLong(limit: 16384))
    }

    func testSubstringInputAndErrorTextNeverEchoesTheToken() throws {
        let token = try JWSSigner(key: key(.rs256), kid: "k").sign(payload: claims)
        let wrapped = "Bearer \(token)"
        let jws = try CompactJWS.parse(wrapped.dropFirst(7))
        XCTAssertTrue(jws.verify(with: key(.rs256).publicKey))
        let secret = "eyJTECRETTOKENPART"
        do {
            _ = try CompactJWS.parse("\(secret).\(secret)=.\(secret)")
            XCTFail("accepted")
        } catch {
            XCTAssertFalse("\(error)".contains(secret), "\(error)")
        }
    }

    func testConcurrentSigningAndVerifyingOnOneKey() throws {
        for algorithm in JWSAlgorithm.allCases {
            let signer = JWSSigner(key: key(algorithm), kid: "k")
            let publicKey = key(algorithm).publicKey
            let iterations = algorithm == .rs256 ? 10 : 60
            let failures = Failures()
            DispatchQueue.concurrentPerform(iterations: 8) { worker in
                for index in 0..<iterations {
                    do {
                        let payload = Array("{\"worker\":\(worker),\"n\":\(index)}".utf8)
                        let jws = try CompactJWS.parse(try signer.sign(payload: payload))
                        if !jws.verify(with: publicKey) || jws.payload != payload { failures.add() }
                        // A bad signature on the same key, interleaved, must not poison other threads.
                        var bad = jws.signature
                        bad[0] ^= 0x80
                        if jws.signingInput.withUnsafeBytes({ publicKey.verify(signature: bad, message: $0) }) { failures.add() }
                    } catch {
                        failures.add()
                    }
                }
            }
            XCTAssertEqual(failures.count, 0, "\(algorithm)")
        }
    }

    private func assertParseFails(
        _ token: String,
        _ expected: JWSError,
        maxLength: Int = 16384,
        file: StaticString = #filePath,
        line: UInt = #line
    ) {
        XCTAssertThrowsError(try CompactJWS.parse(token, maxLength: maxLength), file: file, line: line) { error in
            XCTAssertEqual(error as? JWSError, expected, file: file, line: line)
        }
    }
}

/// A thread-safe counter for the concurrency test.
private final class Failures: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0

    func add() {
        lock.lock()
        value += 1
        lock.unlock()
    }

    var count: Int {
        lock.lock()
        defer { lock.unlock() }
        return value
    }
}
