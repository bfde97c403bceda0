import Foundation
import XCTest

/// An independent implementation checks our tokens: PyJWT, given nothing but the JWKS URL,
/// verifies a token issued over HTTP, for each signing algorithm.
final class PyJWTInteropTests: XCTestCase {
    static var python: String {
        get throws {
            if let python = ProcessInfo.processInfo.environment["BROKER_TEST_PYTHON"] { return python }
            let local = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                .deletingLastPathComponent().appendingPathComponent(".venv-tests/bin/python").path
            if FileManager.default.isExecutableFile(atPath: local) { return local }
            XCTFail("PyJWT is needed: run the tests with `make test` (it creates .venv-tests with pyjwt[crypto])")
            throw CancellationError()
        }
    }

    /// `python` when `check` (Python source; `sys.argv[1:]` are `arguments`) exits 0 in it;
    /// otherwise the test fails with `missing`, which says how to install what is missing.
    static func python(_ python: String, passing check: String, arguments: [String] = [], missing: String) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = ["-c", check] + arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        if process.terminationStatus != 0 {
            XCTFail(missing)
            throw CancellationError()
        }
        return python
    }

    static let script = """
        import json, sys, urllib.request
        import jwt
        base, alg = sys.argv[1], sys.argv[2]
        body = json.dumps({"username": "alice", "password": "correct horse battery staple", "org_name": "org1"}).encode()
        req = urllib.request.Request(base + "/api/org_token/", data=body, headers={"Content-Type": "application/json"})
        token = json.load(urllib.request.urlopen(req))["access"]
        header = jwt.get_unverified_header(token)
        assert header["typ"] == "at+jwt" and header["alg"] == alg, header
        jwks = jwt.PyJWKClient(base + "/.well-known/jwks.json", cache_keys=False)
        key = jwks.get_signing_key_from_jwt(token)
        claims = jwt.decode(token, key.key, algorithms=[alg], audience="org1", issuer="http://127.0.0.1:8080",
                            options={"require": ["exp", "iat", "nbf", "iss", "aud", "sub", "jti"]})
        assert claims["token_type"] == "access" and claims["org_name"] == "org1", claims
        assert isinstance(claims["user_id"], int) and claims["user_name"] == "alice", claims
        # A tampered token must fail for PyJWT too.
        head, payload, sig = token.split(".")
        try:
            jwt.decode(head + "." + payload + "." + sig[:-4] + ("AAAA" if sig[-4:] != "AAAA" else "BBBB"), key.key, algorithms=[alg], audience="org1")
            print("TAMPERED TOKEN ACCEPTED"); sys.exit(1)
        except jwt.InvalidSignatureError:
            pass
        print("verified", alg, header["kid"])
        """

    func verify(_ algorithm: String) throws {
        let python = try Self.python
        let broker = try BrokerBinary.makeWithAliceInOrg1(extraConfig: "signing_alg: \(algorithm)")
        defer { broker.cleanUp() }
        let (server, port) = try broker.serve()
        defer { server.terminate(); server.waitUntilExit() }

        let (status, output, errors) = try Self.runPython(python, Self.script, ["http://127.0.0.1:\(port)", algorithm])
        XCTAssertEqual(status, 0, "PyJWT: \(output) \(errors)")
        XCTAssertTrue(output.hasPrefix("verified \(algorithm)"), output)
    }

    func testPyJWTVerifiesRS256FromTheJWKS() throws { try verify("RS256") }
    func testPyJWTVerifiesES256FromTheJWKS() throws { try verify("ES256") }
    func testPyJWTVerifiesEdDSAFromTheJWKS() throws { try verify("EdDSA") }

    /// PyJWT (2.15) knows Ed25519 keys only under RFC 8037's `EdDSA`, not RFC 9864's `Ed25519`:
    /// it cannot build a key from a JWK with `alg: Ed25519`, and refuses a token whose header
    /// names it even given the right key and `algorithms=["Ed25519"]`. Each way out is tried;
    /// the script prints how each refused. docs/gateways.md says "PyJWT: not Ed25519" because
    /// of this test: when an upgrade of PyJWT verifies such a token, this fails, and the table
    /// and `signing_alg`'s advice must change with it.
    static let refusalScript = """
        import base64, json, sys, urllib.request
        import jwt
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
        base = sys.argv[1]
        body = json.dumps({"username": "alice", "password": "correct horse battery staple", "org_name": "org1"}).encode()
        req = urllib.request.Request(base + "/api/org_token/", data=body, headers={"Content-Type": "application/json"})
        token = json.load(urllib.request.urlopen(req))["access"]
        header = jwt.get_unverified_header(token)
        assert header["alg"] == "Ed25519", header
        jwks = json.load(urllib.request.urlopen(base + "/.well-known/jwks.json"))
        entry = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
        assert entry["alg"] == "Ed25519" and entry["kty"] == "OKP", entry
        refusals = []
        # 1. The JWKS route PyJWT documents.
        try:
            key = jwt.PyJWKClient(base + "/.well-known/jwks.json", cache_keys=False).get_signing_key_from_jwt(token)
            jwt.decode(token, key.key, algorithms=["Ed25519"], audience="org1")
            print("ACCEPTED through PyJWKClient"); sys.exit(1)
        except jwt.exceptions.PyJWTError as error:
            refusals.append("PyJWKClient: " + type(error).__name__)
        # 2. The published key handed over directly, with Ed25519 allowed.
        raw = base64.urlsafe_b64decode(entry["x"] + "=" * (-len(entry["x"]) % 4))
        public = Ed25519PublicKey.from_public_bytes(raw)
        try:
            jwt.decode(token, public, algorithms=["Ed25519"], audience="org1")
            print("ACCEPTED with the raw key"); sys.exit(1)
        except jwt.exceptions.PyJWTError as error:
            refusals.append("decode: " + type(error).__name__)
        # 3. The key is sound: with EdDSA allowed, PyJWT still refuses the Ed25519 header.
        try:
            jwt.decode(token, public, algorithms=["EdDSA"], audience="org1")
            print("ACCEPTED as EdDSA"); sys.exit(1)
        except jwt.exceptions.PyJWTError as error:
            refusals.append("as EdDSA: " + type(error).__name__)
        print("refused", jwt.__version__, "; ".join(refusals))
        """

    func testPyJWTRefusesEd25519() throws {
        let python = try Self.python
        let broker = try BrokerBinary.makeWithAliceInOrg1(extraConfig: "signing_alg: Ed25519")
        defer { broker.cleanUp() }
        let (server, port) = try broker.serve()
        defer { server.terminate(); server.waitUntilExit() }

        let (status, output, errors) = try Self.runPython(python, Self.refusalScript, ["http://127.0.0.1:\(port)"])
        XCTAssertEqual(status, 0, "PyJWT now verifies Ed25519: update docs/gateways.md and this test. \(output) \(errors)")
        XCTAssertTrue(output.hasPrefix("refused"), "\(output) \(errors)")
        for way in ["PyJWKClient: ", "decode: InvalidAlgorithmError", "as EdDSA: InvalidAlgorithmError"] {
            XCTAssertTrue(output.contains(way), "\(way) in \(output)")
        }
    }

    static func runPython(_ python: String, _ script: String, _ arguments: [String]) throws -> (Int32, String, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = ["-c", script] + arguments
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let output = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let errors = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, output, errors)
    }
}
