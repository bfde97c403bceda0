import BrokerCrypto
import Foundation

/// `broker-bench`: performance checks that are not tests (they need quiet, dedicated cores).
///
///     swift run -c release broker-bench jwt [--seconds N] [--alg ES256|RS256|EdDSA|Ed25519]
let usage = """
    usage: broker-bench <command> [options]

    commands:
      jwt    JWT sign and verify throughput against `openssl speed`, single-threaded
             --seconds N        measuring time per figure (default 2)
             --alg NAME         only this algorithm (ES256, RS256, EdDSA, Ed25519); repeatable
             --rounds N         rounds of (openssl, ours) back to back, each side's best
                                reported (default 3)
      validator
             gateway-side validation (signature and every claim check) against
             `openssl speed` verify, single-threaded; --seconds N, --rounds N, --alg NAME as above
      login  PAT logins with a warm identity cache and refresh grants, beside raw signing,
             on the embedded SQLite store (wall clock; 1 and 8 in flight)
             --seconds N, --alg NAME as above
      audit  durable audit lines per second (1, 8, 64 in flight) beside write+fdatasync
             in the same directory; --seconds N
      store  durable write transactions per second on the embedded SQLite store (1, 8, 64 in
             flight) beside write+fdatasync in the same directory; --seconds N
      renewals
             refresh-token renewals per second in the store alone (RefreshTokenRotation in a
             locking transaction; 1 and 16 chains in flight) beside half a core's RS256 signing
             --seconds N (default 5), --database-url URL (PostgreSQL; default the embedded SQLite)
      argon2 raw argon2id verifications per second on every core, the reference of password
             logins; --seconds N (default 10), --threads N (default: the cores),
             --memory-kib N --iterations N --parallelism N (default the broker's 19456, 2, 1)
      timing wrong-password latency percentiles per kind of account (unknown user, argon2id,
             an older argon2 cost, imported PBKDF2), with and without login_failure_floor_ms
             --samples N        logins per case (default 20)
             --floor-ms N       the floor to measure (default 1000, the default setting)
             --pbkdf2-iterations N   of the imported hash (default 1000000, Django 5.2's)
      http   refresh grants or password logins over HTTP against running brokers, round-robin
             over the targets (replicas); prints rate, p50, p99 (scripts/bench-replicas.sh)
             --target URL       a broker's base URL; repeatable
             --mode refresh|login   (default refresh: each client rotates its own chain)
             --clients N (default 16), --seconds N (default 10), --label TEXT
             --user NAME --password-file FILE --org NAME   the account the clients use

    """

let arguments = Array(CommandLine.arguments.dropFirst())
guard let command = arguments.first else {
    FileHandle.standardError.write(Data(usage.utf8))
    exit(2)
}

do {
    switch command {
    case "jwt":
        let options = try JWTBenchmark.Options(parsing: Array(arguments.dropFirst()))
        try JWTBenchmark(options: options, payload: SampleClaims.payload).run()
    case "validator":
        try ValidatorBenchmark(options: try JWTBenchmark.Options(parsing: Array(arguments.dropFirst()))).run()
    case "login":
        try await LoginBenchmark(parsing: Array(arguments.dropFirst())).run()
    case "audit":
        try await AuditBenchmark(parsing: Array(arguments.dropFirst())).run()
    case "store":
        try await StoreWriteBenchmark(parsing: Array(arguments.dropFirst())).run()
    case "renewals":
        let benchmark = try RenewalBenchmark(parsing: Array(arguments.dropFirst()))
        try await benchmark.run(signing: OpenSSLSpeed.measure(.rs256, seconds: benchmark.seconds)?.sign)
    case "argon2":
        try Argon2Benchmark(parsing: Array(arguments.dropFirst())).run()
    case "http":
        try await HTTPLoadBenchmark(parsing: Array(arguments.dropFirst())).run()
    case "timing":
        try await TimingBenchmark(parsing: Array(arguments.dropFirst())).run()
    case "help", "-h", "--help":
        print(usage, terminator: "")
    default:
        FileHandle.standardError.write(Data("unknown command \"\(command)\"\n\n\(usage)".utf8))
        exit(2)
    }
} catch {
    FileHandle.standardError.write(Data("broker-bench: \(error)\n".utf8))
    exit(1)
}
