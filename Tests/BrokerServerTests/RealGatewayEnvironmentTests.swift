import Foundation
import XCTest

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A broker started in the environment of a gateway recipe (an administrator who exports
/// HAProxy's variables in the same shell, or a unit sharing /etc/default/haproxy) is not
/// affected by it: the recipes' variables are read from the shipped files themselves, so a
/// variable added to a recipe later is covered too.
final class RealGatewayEnvironmentTests: XCTestCase {
    /// Every environment variable the shipped recipes read: `${NAME` in the directives of
    /// haproxy.cfg and nginx.conf, `environ.get("NAME"` / `environ["NAME"` in refresh-broker-keys.
    static func recipeVariables() throws -> Set<String> {
        var names = Set<String>()
        for file in ["haproxy.cfg", "nginx.conf"] {
            // The directives, not the comments (which show the syntax as `${NAME-default}`).
            let text = try String(contentsOf: RealGateway.examples.appendingPathComponent(file), encoding: .utf8)
                .split(separator: "\n").filter { !$0.trimmingCharacters(in: .whitespaces).hasPrefix("#") }
                .joined(separator: "\n")
            names.formUnion(captures(#"\$\{([A-Za-z_][A-Za-z0-9_]*)"#, in: text))
        }
        let script = try String(contentsOf: RealGateway.refreshScript, encoding: .utf8)
        names.formUnion(captures(#"environ(?:ment)?(?:\.get\(|\[)\s*["']([A-Za-z_][A-Za-z0-9_]*)["']"#, in: script))
        return names
    }

    static func captures(_ pattern: String, in text: String) -> [String] {
        let regex = try! NSRegularExpression(pattern: pattern)
        return regex.matches(in: text, range: NSRange(text.startIndex..., in: text)).compactMap { match in
            Range(match.range(at: 1), in: text).map { String(text[$0]) }
        }
    }

    func testTheRecipesVariablesHaveTheirOwnPrefix() throws {
        let names = try Self.recipeVariables()
        // The extraction finds what the recipes are known to read (else it finds nothing at all).
        XCTAssertTrue(
            names.isSuperset(of: ["GATEWAY_ISSUER", "GATEWAY_CLUSTER_NAME", "GATEWAY_ALG", "GATEWAY_KEYS_DIR", "GATEWAY_HAPROXY_CFG"]),
            "\(names.sorted())")
        XCTAssertEqual(names.filter { !$0.hasPrefix("GATEWAY_") }.sorted(), [], "a recipe variable outside GATEWAY_*")
    }

    /// Every recipe variable exported, the keys directory pointing at HAProxy's key slots: the
    /// broker starts, signs with the keys of its own keys_dir, and leaves the slots as they were
    /// (mode, files and contents).
    func testBrokerStartedInTheRecipesEnvironmentIgnoresIt() async throws {
        var broker = try BrokerBinary.make()
        defer { broker.cleanUp() }
        let slots = broker.workDirectory.appendingPathComponent("haproxy-broker-keys")
        try FileManager.default.createDirectory(at: slots, withIntermediateDirectories: true)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: slots.path)
        try "-----BEGIN PUBLIC KEY-----\nnot a real key\n-----END PUBLIC KEY-----\n".write(
            to: slots.appendingPathComponent("key1.pem"), atomically: true, encoding: .utf8)
        try "some-kid\n".write(to: slots.appendingPathComponent("key1.kid"), atomically: true, encoding: .utf8)
        let before = try Self.snapshot(slots)

        let names = try Self.recipeVariables()
        XCTAssertFalse(names.isEmpty)
        for name in names {
            broker.environment[name] = Self.plausibleValue(name, slots: slots)
        }
        let log = broker.workDirectory.appendingPathComponent("serve.log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let (server, port): (Process, Int)
        do {
            (server, port) = try broker.serve(standardError: try FileHandle(forWritingTo: log))
        } catch {
            let output = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
            XCTFail("the broker does not start in the recipes' environment \(names.sorted()): \(error)\n\(output)")
            return
        }
        defer { server.terminate(); server.waitUntilExit() }

        let reply = try await RealGateway.request("http://127.0.0.1:\(port)/.well-known/jwks.json")
        XCTAssertEqual(reply.status, 200)
        let jwks = try XCTUnwrap(try JSONSerialization.jsonObject(with: reply.body) as? [String: Any])
        let published = Set(((jwks["keys"] as? [[String: Any]]) ?? []).compactMap { $0["kid"] as? String })
        let ring = try Data(contentsOf: broker.workDirectory.appendingPathComponent("keys/ring.json"))
        let manifest = try XCTUnwrap(try JSONSerialization.jsonObject(with: ring) as? [String: Any])
        let own = Set(((manifest["keys"] as? [[String: Any]]) ?? []).compactMap { $0["kid"] as? String })
        XCTAssertFalse(own.isEmpty, "the broker's own keys_dir holds its ring")
        XCTAssertEqual(published, own, "the broker publishes the keys of its own keys_dir")
        let algorithms = Set(((jwks["keys"] as? [[String: Any]]) ?? []).compactMap { $0["alg"] as? String })
        XCTAssertEqual(algorithms, ["RS256"], "its configured signing_alg, not the gateway's")
        XCTAssertEqual(try Self.snapshot(slots), before, "HAProxy's key slots are untouched")
    }

    /// A value of the kind the name suggests; the keys directory is the slots folder.
    static func plausibleValue(_ name: String, slots: URL) -> String {
        if name.hasSuffix("_DIR") { return slots.path }
        if name.hasSuffix("_ALG") { return "ES256" }
        if name.hasSuffix("_ISSUER") || name.hasSuffix("_URL") { return "https://login.gateway-env.example" }
        if name.hasSuffix("_CFG") { return "/etc/haproxy/haproxy.cfg" }
        if name.hasSuffix("_BIND") || name.hasSuffix("_NODE") { return "127.0.0.1:1" }
        return "gateway-\(name.lowercased())"
    }

    /// The directory's mode and each file's name, mode and contents.
    static func snapshot(_ directory: URL) throws -> [String] {
        let manager = FileManager.default
        let mode = (try manager.attributesOfItem(atPath: directory.path)[.posixPermissions] as? Int) ?? -1
        var entries = ["directory mode \(String(mode, radix: 8))"]
        for name in try manager.contentsOfDirectory(atPath: directory.path).sorted() {
            let path = directory.appendingPathComponent(name).path
            let fileMode = (try manager.attributesOfItem(atPath: path)[.posixPermissions] as? Int) ?? -1
            let contents = manager.contents(atPath: path).map { String(decoding: $0, as: UTF8.self) } ?? "<unreadable>"
            entries.append("\(name) \(String(fileMode, radix: 8)) \(contents)")
        }
        return entries
    }
}
