import BrokerCrypto
import Foundation

/// Runs `openssl speed` for the primitive under one JWS algorithm and reads its
/// signatures-per-second and verifications-per-second.
enum OpenSSLSpeed {
    struct Rates {
        var sign: Double
        var verify: Double
    }

    /// nil when `openssl` is missing or its output cannot be read; the report then says n/a.
    /// Call it from the main thread: a process started from a thread of the cooperative pool
    /// inherits that thread's blocked signals, and `openssl speed` never sees the `SIGALRM` that
    /// ends each of its tests (it ran on for minutes).
    static func measure(_ algorithm: JWSAlgorithm, seconds: Double) -> Rates? {
        let (test, tag) = switch algorithm {
        case .es256: ("ecdsap256", "+F4:")
        case .rs256: ("rsa2048", "+F2:")
        // One primitive under two names (RFC 9864): the same reference for both.
        case .edDSA, .ed25519: ("ed25519", "+F6:")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        // -mr: the machine-readable form, one "+F<n>:…:sign/s:verify/s" line per test.
        process.arguments = ["openssl", "speed", "-mr", "-seconds", String(max(1, Int(seconds.rounded()))), test]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        do {
            try process.run()
        } catch {
            return nil
        }
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { return nil }
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n") where line.hasPrefix(tag) {
            // RSA/ECDSA: +F2:index:bits:sign/s:verify/s; EdDSA: +F6:index:bits:name:sign/s:verify/s.
            let fields = line.split(separator: ":")
            guard fields.count >= 5, let sign = Double(fields[fields.count - 2]), let verify = Double(fields[fields.count - 1]) else {
                return nil
            }
            return Rates(sign: sign, verify: verify)
        }
        return nil
    }
}
