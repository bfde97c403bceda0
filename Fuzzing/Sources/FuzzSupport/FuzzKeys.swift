import BrokerCrypto

/// Fixed signing keys for the fuzz targets, so that the seed tokens in Fuzz/Corpus stay valid
/// between runs. Test keys only: they sign nothing but fuzzer inputs.
public enum FuzzKeys {
    public static let rs256 = load(rsaPEM, .rs256)
    public static let es256 = load(ecPEM, .es256)
    public static let edDSA = load(ed25519PEM, .edDSA)
    /// The EdDSA key's own material under RFC 9864's name: every Ed25519 signature is valid
    /// for both keys, so only the `alg` rule keeps an `Ed25519` token from verifying under the
    /// `EdDSA` key or the reverse, and the fuzzer sees that rule alone tell them apart.
    public static let ed25519 = load(ed25519PEM, .ed25519)

    /// Every key. A verifier finds each under its algorithm's name as `kid`, and nothing under
    /// any other `kid` (a traversal such as "../../etc/passwd" must find no key).
    public static let all: [PrivateKey] = [rs256, es256, edDSA, ed25519]

    /// The public key a verifier finds under `kid`.
    public static func publicKey(kid: String) -> PublicKey? {
        all.first { $0.algorithm.rawValue == kid }?.publicKey
    }

    private static func load(_ pem: String, _ algorithm: JWSAlgorithm) -> PrivateKey {
        do { return try PrivateKey(pem: pem, algorithm: algorithm) } catch { fatalError("fuzz key: \(error)") }
    }

    private static let rsaPEM = """
-----BEGIN PRIVATE KEY-----
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQCqigSc+1/BiLyw
Po58nKqvwNTxzs+NC4I0oo9vCfhS5IkacwjDZ8ltiNRNKhS6vrL3BIMpaWQ2R3ZQ
05bGuGQzpiIgJXVUTAp4XBElYR8tcdw817Wclyis5TJdK1pl4tz3VJ683nNBD3qJ
LkLClzhSRQ/QfVPvK1TWvdMw9a7p+4PY5MNHjEhyxzW095EC3TWuuaod/ZWP4Kw+
YiETlJwWkAP5QatmkTMx0ZzehSa3Bzq8x6tGG2d0d7qGxEbA/4MyXBCjT1p4tyAW
ce3pnqeM1fSozEE+n80ikX+tUNLFcT09UtMlQ8sSYAYqTgUcoDxP+/SX13L4jnTO
4p6Wq3vtAgMBAAECggEAID6IyUKpE/9dx8gIKkz349Omn5KuAPnKVFfhHUpKCqg9
uQPDhii/N8fddjqM4VMxpM1UXFXaNf4Ug4tCEJAoF/DjNmdGtBnNh/zGXCYtHitP
TCyv4Kve67PJLj8GcEmw5E26VrULnyNFVJ8rzb2IT1vR9eZgYpHzkEejYPgu6nvN
cdsKA027tNluZHqNheZSJimlG1iGZFferogxuLlnw0fs8qkA/geWisPMfdGohEfJ
XmKEFiht8kVIFGBREdYmXE4RcYnwaXN3XaVRFGmgQtNd/acsjflZDeJ0OxYlwOce
d6EVPX05Q3nuB3KC4ialacajqRCyC9D+S/8QnXoWwQKBgQDpDIiil3lAAHbMgxLD
i10f7C5oRKjMEA/yNuAMyxWd3hDpiF5jjTSUeED8Ydu5r5ZigNdWF+sZAx0s3EFE
1AIydFOzoeQCbporsf/9bqI2f88VzQYdvJwmrx2ym9UcRVOLGd+9Nhbg83NKXbbr
ScImvnSRi85mNb04uwJXxf3RQQKBgQC7VYfSEgWyaZpqDdvwha5p2G1I4j+R3thA
YGDo8ia22Qdz7Uaj+a6rL4uxuvFTPznlojOki+AH5V5zaiNdR6pt+2DJejAw4EZE
gNvYzLOSNKJSyPhfrSIWKenw/qeHxF+NLE5uzkqCcjM9cQvNCIPcocA2fCIGcazl
ozNiHw1TrQKBgAZuyyK5zaX/nUfd4lm1checfFdydbpUQyxraVnRDUKzS4I2umxD
DI2AmEKfLOJ+P0duyQLeXCXvmRGQ7thIhdsArQLLWDDc/rJwEmHbeOzKMFwosZ+G
gkTrFoXEmWhTXY/8YdmmMZF6BtepqI/sFEjffvY5hrP5jcSQHOtxUqVBAoGAGNwj
1wvPN7rt4+8M5eFHoQI4lnh3ySrSddCUa7Vez9sDMy4ktrP2qv73QdG2Hr8ANuoM
gmSRiVq16wkFwmY1Rr0aPgJ6DLJmgMa85gtcNSXI+MV0uHWoVVqgkfupTcoQiBJ+
IhQ8LQ1soVW0JDRiE1Bfyps0hLhnIl5C/l1yjk0CgYEAxhHIVkOhzk4P40eSdyE+
8jIZI1Jmcz2TjSxY/kp30S3ZPbiZE+J/gJ64tFyRZQ2htPKfxKNQp9i8gYguvHTd
LxOeY051Xd1stDuVrGooHKZnJ+K2ZVglzFbkHBQkTubHErNu5FNsEaX/3Nn8lQiT
f3YjglOFyU5x3DChK9nXigA=
-----END PRIVATE KEY-----
"""

    private static let ecPEM = """
-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgBvwNPaZmdu6HRHQd
Duw9O/dNHVwCO53Zzxf3Ra8zd76hRANCAATHn057GwINs7/tR1J3ntV2JQjcFHml
Edks2BERhX2xx2bGvlkT6xMkyqylWMyKZJtfz+wu7lT2ec+aB9rCRthP
-----END PRIVATE KEY-----
"""

    private static let ed25519PEM = """
-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEILMa3Xjt+YZdrP1onhdKFnna0ifCTv288xpQ2U9TMxp8
-----END PRIVATE KEY-----
"""
}
