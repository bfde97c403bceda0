// swift-tools-version:6.2
// libFuzzer targets for the broker's parsers (docs/fuzzing.md). Built and run by scripts/fuzz.sh:
//   swift build --package-path Fuzzing --scratch-path .build-fuzz -c release --sanitize fuzzer \
//     -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library -Xswiftc -enable-testing
// A separate package so that the sanitizer flags never reach the root package's own build.
import Foundation
import PackageDescription

// SwiftPM names a path dependency after its directory, which is whatever the checkout is called.
let broker = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .lastPathComponent.lowercased()

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "broker-fuzz",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(path: ".."),
    ],
    targets: [
        // Fixed test keys and the invariant check shared by the targets.
        .target(
            name: "FuzzSupport",
            dependencies: [.product(name: "BrokerCrypto", package: broker)],
            swiftSettings: swiftSettings
        ),
        // Cheap targets: BrokerCrypto and BrokerValidator only.
        .executableTarget(
            name: "FuzzJWS",
            dependencies: [
                "FuzzSupport", .product(name: "BrokerCrypto", package: broker),
                .product(name: "BrokerValidator", package: broker),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "FuzzJSON",
            dependencies: ["FuzzSupport", .product(name: "BrokerCrypto", package: broker)],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "FuzzJWKS",
            dependencies: [
                "FuzzSupport", .product(name: "BrokerCrypto", package: broker),
                .product(name: "BrokerValidator", package: broker),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "FuzzPasswordHash",
            dependencies: ["FuzzSupport", .product(name: "BrokerCrypto", package: broker)],
            swiftSettings: swiftSettings
        ),
        // The header parsers live in BrokerGateway and GitHubClient, which pull in NIO and libcurl;
        // their files depend on the standard library only, so this target compiles them itself
        // (symbolic links to the real files: the fuzzer always runs the code that ships).
        .executableTarget(name: "FuzzHTTPHeaders", dependencies: ["FuzzSupport"], swiftSettings: swiftSettings),
        // Heavier: BrokerCore (with swift-nio, swift-log, swift-metrics).
        .executableTarget(
            name: "FuzzConfiguration",
            dependencies: ["FuzzSupport", .product(name: "BrokerCore", package: broker)],
            swiftSettings: swiftSettings
        ),
        // The portal's form, cookie and redirect readers (server files compiled as they are).
        .executableTarget(name: "FuzzPortalForm", dependencies: ["FuzzSupport"], swiftSettings: swiftSettings),
        .executableTarget(
            name: "FuzzRequestBody",
            dependencies: [
                "FuzzSupport", .product(name: "BrokerCore", package: broker),
                .product(name: "BrokerCrypto", package: broker),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)
