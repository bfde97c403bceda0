import BrokerCrypto
import Foundation

/// Measures full JWT signing and verification against OpenSSL's own signature throughput.
///
/// "ours" signs a complete token (claims built with `JSONWriter`, `JWSSigner.sign`) and
/// verifies a complete token (`CompactJWS.parse`, signature check, `JSONParser.parse` of the
/// claims). "openssl" is `openssl speed` for the same primitive, which signs a bare digest
/// with a reused context: the ceiling our per-token overhead is measured against. Both sides
/// count CPU time, not wall time (see `measure`).
struct JWTBenchmark {
    struct Options {
        var seconds: Double = 2
        /// Rounds of (OpenSSL, ours), back to back; each side reports its best round.
        var rounds = 3
        var algorithms: [JWSAlgorithm] = [.es256, .rs256, .edDSA, .ed25519]

        init(parsing arguments: [String]) throws {
            var chosen: [JWSAlgorithm] = []
            var remaining = arguments[...]
            while let argument = remaining.popFirst() {
                switch argument {
                case "--seconds":
                    guard let value = remaining.popFirst().flatMap(Double.init), value > 0 else {
                        throw BenchError("--seconds needs a positive number")
                    }
                    seconds = value
                case "--rounds":
                    guard let value = remaining.popFirst().flatMap(Int.init), value > 0 else {
                        throw BenchError("--rounds needs a positive integer")
                    }
                    rounds = value
                case "--alg":
                    guard let name = remaining.popFirst(), let algorithm = JWSAlgorithm(rawValue: name) else {
                        throw BenchError("--alg needs one of \(JWSAlgorithm.allCases.map(\.rawValue).joined(separator: ", "))")
                    }
                    chosen.append(algorithm)
                default:
                    throw BenchError("unknown option \"\(argument)\"")
                }
            }
            if !chosen.isEmpty { algorithms = chosen }
        }
    }

    let options: Options
    let payload: PayloadBuilder

    func run() throws {
        for algorithm in options.algorithms {
            let key = try PrivateKey.generate(algorithm)
            let signer = JWSSigner(key: key, kid: key.publicKey.thumbprint)
            var best = Best()
            for _ in 0..<options.rounds {
                // OpenSSL, then ours straight after, so both see similar machine load.
                best.reference(OpenSSLSpeed.measure(algorithm, seconds: options.seconds))
                best.ours["sign", default: 0] = max(best.ours["sign", default: 0], try measureSigning(signer))
                best.ours["verify", default: 0] = max(best.ours["verify", default: 0], try measureVerifying(signer))
            }
            Self.report(algorithm, "sign", ours: best.ours["sign", default: 0], openssl: best.openssl?.sign)
            Self.report(algorithm, "verify", ours: best.ours["verify", default: 0], openssl: best.openssl?.verify)
        }
    }

    /// The best round of each side. On a shared machine a round is only ever slowed down (another
    /// process takes the core, its caches, its frequency), never sped up, so the best round is
    /// the closest to what the code itself costs; taking it for both sides keeps the ratio from
    /// swinging with whichever side a neighbour happened to disturb.
    struct Best {
        var openssl: OpenSSLSpeed.Rates?
        var ours: [String: Double] = [:]

        mutating func reference(_ rates: OpenSSLSpeed.Rates?) {
            guard let rates else { return }
            openssl = OpenSSLSpeed.Rates(
                sign: max(openssl?.sign ?? 0, rates.sign), verify: max(openssl?.verify ?? 0, rates.verify))
        }
    }

    static func report(_ algorithm: JWSAlgorithm, _ operation: String, ours: Double, openssl: Double?) {
        let reference = openssl.map { String(Int($0.rounded())) } ?? "n/a"
        let ratio = openssl.map { String(format: "%.2f", ours / $0) } ?? "n/a"
        print("\(algorithm.rawValue) \(operation) ours=\(Int(ours.rounded())) openssl=\(reference) ratio=\(ratio)")
    }

    private func measureSigning(_ signer: JWSSigner) throws -> Double {
        var checksum = 0
        let now = Int64(Date().timeIntervalSince1970)
        let rate = try Self.measure(seconds: options.seconds) {
            let token = try signer.sign(payload: payload(now))
            checksum &+= token.utf8.count
        }
        precondition(checksum != 0)
        return rate
    }

    private func measureVerifying(_ signer: JWSSigner) throws -> Double {
        let now = Int64(Date().timeIntervalSince1970)
        // Distinct tokens, as a gateway sees; cycling through them keeps caches honest.
        let tokens = try (0..<64).map { _ in try signer.sign(payload: payload(now)) }
        let publicKey = signer.key.publicKey
        var index = 0
        var checksum: Int64 = 0
        let rate = try Self.measure(seconds: options.seconds) {
            let jws = try CompactJWS.parse(tokens[index])
            guard jws.verify(with: publicKey) else { throw BenchError("a token failed to verify") }
            let claims = try JSONParser.parse(jws.payload)
            checksum &+= claims["exp"]?.int64 ?? 0
            index = (index + 1) % tokens.count
        }
        precondition(checksum != 0)
        return rate
    }

    /// Operations per CPU second of `body`, after a short warm-up, over about `seconds` of
    /// this thread's CPU time.
    ///
    /// CPU time rather than wall time because `openssl speed` counts CPU time by default, and
    /// on a shared machine wall time would charge other processes' work to whichever side
    /// happened to run while they were busy.
    static func measure(seconds: Double, _ body: () throws -> Void) throws -> Double {
        let warmUpEnd = threadCPUSeconds() + 0.25
        while threadCPUSeconds() < warmUpEnd {
            for _ in 0..<8 { try body() }
        }
        let start = threadCPUSeconds()
        let deadline = start + seconds
        var operations = 0
        var now = start
        while now < deadline {
            for _ in 0..<8 { try body() }
            operations += 8
            now = threadCPUSeconds()
        }
        return Double(operations) / (now - start)
    }

    private static func threadCPUSeconds() -> Double {
        var time = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
    }
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
