// swift-tools-version:6.2
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "broker",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "broker", targets: ["broker"]),
        .executable(name: "broker-bench", targets: ["broker-bench"]),
        .library(name: "BrokerCrypto", targets: ["BrokerCrypto"]),
        .library(name: "BrokerCore", targets: ["BrokerCore"]),
        .library(name: "BrokerValidator", targets: ["BrokerValidator"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-configuration.git", from: "1.4.0", traits: [.defaults, "YAML"]),
        .package(url: "https://github.com/vapor/sqlite-nio.git", from: "1.13.2"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.3"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.36.0"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache.git", from: "2.1.1"),
    ],
    targets: [
        // System libraries from Debian's -dev packages (see Makefile `deps`).
        .systemLibrary(name: "COpenSSL", pkgConfig: "openssl", providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CArgon2", pkgConfig: "libargon2", providers: [.apt(["libargon2-dev"])]),
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        // C wrappers for OpenSSL macros and functions Swift cannot call directly.
        .target(name: "CBrokerShims", dependencies: ["COpenSSL"]),
        // Typed wrappers for libcurl's variadic setopt/getinfo, which Swift cannot call.
        .target(name: "CCurlShims", dependencies: ["CCurl"]),

        // JOSE and password hashing: no networking, no storage.
        // Locks ThreadSanitizer can see (see Sources/BrokerSync/Locked.swift).
        .target(name: "BrokerSync", swiftSettings: swiftSettings),
        .target(
            name: "BrokerCrypto",
            dependencies: ["BrokerSync", "COpenSSL", "CArgon2", "CBrokerShims"],
            swiftSettings: swiftSettings
        ),
        // What a gateway embeds: the token rules, a JWKS cache, allow/deny decisions. No networking.
        .target(name: "BrokerValidator", dependencies: ["BrokerSync", "BrokerCrypto"], swiftSettings: swiftSettings),
        // The domain: accounts, orgs, memberships, token policy, refresh families, the key ring.
        .target(
            name: "BrokerCore",
            dependencies: [
                "BrokerSync",
                "BrokerCrypto",
                "BrokerValidator",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        // The embedded SQLite implementation of `Store`.
        .target(
            name: "BrokerSQLite",
            dependencies: [
                "BrokerSync",
                "BrokerCore",
                "CBrokerShims",
                .product(name: "SQLiteNIO", package: "sqlite-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        // The PostgreSQL implementation of `Store`: many replicas on one shared database.
        .target(
            name: "BrokerPostgres",
            dependencies: [
                "BrokerSync",
                "BrokerCore",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: swiftSettings
        ),
        // The libcurl client for GitHub's REST API and device flow.
        .target(
            name: "GitHubClient",
            dependencies: ["BrokerSync", "BrokerCore", "BrokerCrypto", "CCurl", "CCurlShims"],
            swiftSettings: swiftSettings
        ),
        // A fake GitHub on loopback (REST shapes, device flow, rate limits, faults) for tests.
        .target(
            name: "FakeGitHub",
            dependencies: [
                "BrokerSync",
                "BrokerCrypto",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        // The connection timeouts and caps both HTTP servers (`serve`, `gateway`) are built with.
        .target(
            name: "BrokerConnections",
            dependencies: [
                "BrokerSync",
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
            ],
            swiftSettings: swiftSettings
        ),
        // HTTP only: decode, call the core, encode (and pass scaling calls on to the provisioner).
        .target(
            name: "BrokerServer",
            dependencies: [
                "BrokerCore", "BrokerConnections",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                // The provisioner's client (scaling calls of generation-1 clients).
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ],
            // Compiled into the binary: a resource bundle must sit beside the binary, and an
            // installation that copies the binary alone (the container image did) stopped at start.
            resources: [.embedInCode("Resources/openapi.yaml")],
            swiftSettings: swiftSettings
        ),
        // The portal: server-rendered HTML pages over the same core services as the API.
        .target(
            name: "BrokerPortal",
            dependencies: [
                "BrokerCore", "BrokerCrypto", "BrokerServer",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Mustache", package: "swift-mustache"),
            ],
            // Templates and the stylesheet are compiled in, as openapi.yaml is: the binary alone is the installation.
            resources: [.embedInCode("Resources")],
            swiftSettings: swiftSettings
        ),
        // The forward-auth sidecar (`broker gateway`): fetches the JWKS over HTTP, answers allow/deny
        // from a plain SwiftNIO HTTP/1.1 server.
        .target(
            name: "BrokerGateway",
            dependencies: [
                "BrokerSync",
                "BrokerValidator", "BrokerConnections",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOExtras", package: "swift-nio-extras"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // The `broker` command line: configuration loading and every subcommand.
        .target(
            name: "BrokerCommands",
            dependencies: [
                "BrokerSync",
                "BrokerCore", "BrokerCrypto", "BrokerSQLite", "BrokerPostgres", "BrokerServer", "BrokerPortal", "GitHubClient", "BrokerGateway",
                "BrokerConnections",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(name: "broker", dependencies: ["BrokerCommands"], swiftSettings: swiftSettings),
        .executableTarget(
            name: "broker-bench",
            dependencies: [
                "BrokerCore", "BrokerCrypto", "BrokerSQLite", "BrokerPostgres", "BrokerSync", "BrokerValidator",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),

        .testTarget(name: "BrokerCryptoTests", dependencies: ["BrokerCrypto"], swiftSettings: swiftSettings),
        .testTarget(
            name: "BrokerValidatorTests", dependencies: ["BrokerSync", "BrokerValidator", "BrokerCrypto"], swiftSettings: swiftSettings),
        .testTarget(
            name: "BrokerCoreTests",
            dependencies: [
                "BrokerSync", "BrokerCore", "BrokerSQLite", "BrokerPostgres",
                .product(name: "PostgresNIO", package: "postgres-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "BrokerServerTests",
            dependencies: [
                "BrokerSync",
                "BrokerCommands", "BrokerServer", "BrokerPortal", "BrokerSQLite", "BrokerPostgres", "GitHubClient", "FakeGitHub",
                "BrokerGateway", "BrokerConnections",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "GitHubClientTests",
            dependencies: ["GitHubClient", "FakeGitHub", "BrokerCore"],
            swiftSettings: swiftSettings
        ),
    ]
)
