import BrokerCrypto
import Foundation
import XCTest

/// Test vectors copied from the RFCs, and helpers to turn their JWK private keys into the PEM
/// forms `PrivateKey` loads (DER assembled by hand, so the traditional PEM forms get tested too).
enum JOSEVectors {
    // RFC 7515 appendix A.2 (RS256) — the RSA key of Figure "A.2.1" as JWK members.
    static let rsaN = "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ"
    static let rsaE = "AQAB"
    static let rsaD = "Eq5xpGnNCivDflJsRQBXHx1hdR1k6Ulwe2JZD50LpXyWPEAeP88vLNO97IjlA7_GQ5sLKMgvfTeXZx9SE-7YwVol2NXOoAJe46sui395IW_GO-pWJ1O0BkTGoVEn2bKVRUCgu-GjBVaYLU6f3l9kJfFNS3E0QbVdxzubSu3Mkqzjkn439X0M_V51gfpRLI9JYanrC4D4qAdGcopV_0ZHHzQlBjudU2QvXt4ehNYTCBr6XCLQUShb1juUO1ZdiYoFaFQT5Tw8bGUl_x_jTj3ccPDVZFD9pIuhLhBOneufuBiB4cS98l2SR_RQyGWSeWjnczT0QU91p1DhOVRuOopznQ"
    static let rsaP = "4BzEEOtIpmVdVEZNCqS7baC4crd0pqnRH_5IB3jw3bcxGn6QLvnEtfdUdiYrqBdss1l58BQ3KhooKeQTa9AB0Hw_Py5PJdTJNPY8cQn7ouZ2KKDcmnPGBY5t7yLc1QlQ5xHdwW1VhvKn-nXqhJTBgIPgtldC-KDV5z-y2XDwGUc"
    static let rsaQ = "uQPEfgmVtjL0Uyyx88GZFF1fOunH3-7cepKmtH4pxhtCoHqpWmT8YAmZxaewHgHAjLYsp1ZSe7zFYHj7C6ul7TjeLQeZD_YwD66t62wDmpe_HlB-TnBA-njbglfIsRLtXlnDzQkv5dTltRJ11BKBBypeeF6689rjcJIDEz9RWdc"
    static let rsaDP = "BwKfV3Akq5_MFZDFZCnW-wzl-CCo83WoZvnLQwCTeDv8uzluRSnm71I3QCLdhrqE2e9YkxvuxdBfpT_PI7Yz-FOKnu1R6HsJeDCjn12Sk3vmAktV2zb34MCdy7cpdTh_YVr7tss2u6vneTwrA86rZtu5Mbr1C1XsmvkxHQAdYo0"
    static let rsaDQ = "h_96-mK1R_7glhsum81dZxjTnYynPbZpHziZjeeHcXYsXaaMwkOlODsWa7I9xXDoRwbKgB719rrmI2oKr6N3Do9U0ajaHF-NKJnwgjMd2w9cjz3_-kyNlxAr2v4IKhGNpmM5iIgOS1VZnOZ68m6_pbLBSp3nssTdlqvd0tIiTHU"
    static let rsaQI = "IYd7DHOhrWvxkwPQsRM2tOgrjbcrfvtQJipd-DlcxyVuuM9sQLdgjVk2oy26F0EmpScGLq2MowX7fhd_QJQ3ydy5cY7YIBi87w93IKLEdfnbJtoOPLUW0ITrJReOgo1cq9SbsxYawBgfp_gh6A5603k2-ZQwVK0JKSHuLFkuQ3U"
    /// RFC 7515 A.2: header {"alg":"RS256"}, the A.1 payload, and the PKCS#1 v1.5 signature.
    static let rs256Token = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw"

    // RFC 7515 appendix A.3 (ES256).
    static let ecX = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU"
    static let ecY = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"
    static let ecD = "jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI"
    static let es256Token = "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q"

    // RFC 8037 appendix A.1 (Ed25519 key), A.3 (thumbprint), A.4 (signature of "Example of Ed25519 signing").
    static let edD = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"
    static let edX = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
    static let edThumbprint = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
    static let edDSAToken = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"

    // RFC 7638 section 3.1 (RSA key and its thumbprint).
    static let thumbprintN = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
    static let thumbprintE = "AQAB"
    static let rsaThumbprint = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"

    /// The RFC 7515 A.2 key as a traditional "RSA PRIVATE KEY" (PKCS#1 RSAPrivateKey).
    static var rsaTraditionalPEM: String {
        let members = [rsaN, rsaE, rsaD, rsaP, rsaQ, rsaDP, rsaDQ, rsaQI].map { JOSEDER.integer(b64u($0)) }
        return JOSEDER.pem("RSA PRIVATE KEY", JOSEDER.sequence([JOSEDER.integer([0])] + members))
    }

    /// The RFC 7515 A.3 key as a traditional "EC PRIVATE KEY" (SEC 1 ECPrivateKey).
    static var ecTraditionalPEM: String {
        let point = [0x04] + b64u(ecX) + b64u(ecY)
        let body = JOSEDER.sequence([
            JOSEDER.integer([1]),
            JOSEDER.octetString(b64u(ecD)),
            JOSEDER.explicit(0, JOSEDER.oidPrime256v1),
            JOSEDER.explicit(1, JOSEDER.bitString(point)),
        ])
        return JOSEDER.pem("EC PRIVATE KEY", body)
    }

    /// The RFC 8037 A.1 key as PKCS#8 "PRIVATE KEY" (RFC 8410).
    static var edPKCS8PEM: String {
        let seed = b64u(edD)
        let body = JOSEDER.sequence([
            JOSEDER.integer([0]),
            JOSEDER.sequence([JOSEDER.oidEd25519]),
            JOSEDER.octetString(JOSEDER.octetString(seed)),
        ])
        return JOSEDER.pem("PRIVATE KEY", body)
    }

    static func b64u(_ text: String) -> [UInt8] {
        guard let bytes = Base64URL.decode(text) else { fatalError("bad vector \(text.prefix(10))") }
        return bytes
    }
}

/// Just enough DER to build key files.
enum JOSEDER {
    static let oidPrime256v1: [UInt8] = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07]
    static let oidEd25519: [UInt8] = [0x06, 0x03, 0x2b, 0x65, 0x70]

    static func length(_ count: Int) -> [UInt8] {
        if count < 0x80 { return [UInt8(count)] }
        if count < 0x100 { return [0x81, UInt8(count)] }
        return [0x82, UInt8(count >> 8), UInt8(count & 0xff)]
    }

    static func tlv(_ tag: UInt8, _ content: [UInt8]) -> [UInt8] {
        [tag] + length(content.count) + content
    }

    static func integer(_ magnitude: [UInt8]) -> [UInt8] {
        var bytes = Array(magnitude.drop { $0 == 0 })
        if bytes.isEmpty { bytes = [0] }
        if bytes[0] & 0x80 != 0 { bytes.insert(0, at: 0) }
        return tlv(0x02, bytes)
    }

    static func sequence(_ items: [[UInt8]]) -> [UInt8] { tlv(0x30, items.flatMap { $0 }) }
    static func octetString(_ bytes: [UInt8]) -> [UInt8] { tlv(0x04, bytes) }
    static func bitString(_ bytes: [UInt8]) -> [UInt8] { tlv(0x03, [0] + bytes) }
    static func explicit(_ number: UInt8, _ content: [UInt8]) -> [UInt8] { tlv(0xa0 | number, content) }

    static func pem(_ label: String, _ der: [UInt8]) -> String {
        let base64 = Data(der).base64EncodedString(options: [.lineLength64Characters, .endLineWithLineFeed])
        return "-----BEGIN \(label)-----\n\(base64)\n-----END \(label)-----\n"
    }
}

/// Keys made with `openssl genpkey` for tests only; they protect nothing.
enum JOSEFixtures {
    static let rsa1024PEM = """
        -----BEGIN PRIVATE KEY-----
        MIICdwIBADANBgkqhkiG9w0BAQEFAASCAmEwggJdAgEAAoGBAMMmkErRyrjte+XE
        RwKt/GMNeQOMpCbcmLbDKb5JPO9DIQcqrWDYI8CgqGBmYvUdgLpGaKV3ngYVWKOs
        1QECPQ8kjhP9CK1f4TOP9fp1XQcHN9/t9LnJMsDrjxKxNnw9G/gG8CakZ4/zHM/H
        FwC/veUtd+KjI8GyejEl4QtegVbhAgMBAAECgYAMJip1ffoQ6Tf9ZerFz+8We5A9
        GFRf1vvq5NuEbSrN+m/j8lQ44zvWkinpVnZyrBOHhTqekoPT/SA3kFryZSFH5DlC
        V735xUWrEni4nXXFFKxFYPc23Nw/eO6Ck1EiCv3WnKNTmjrWP8K8e+cZN2SmcoiD
        kvtZ2PbKqFB2QSgtAQJBAOMolG4rQ9t2ZbYkgpX0CzSHtTBKWAqhH+Y/q6lu9L5e
        td0lwh4cXeoG+OZyqCmlZ/bM/6u0ZgksaDrTfp8s7jUCQQDb7Z6d51tCMY8Y08jN
        cNsK0qxrjsjkhc/hS6susx1Skv4+P9Ye/NwJhoOjLY/lihFX3LMPmLfAWpvMPNLr
        mct9AkB5Ej3aYjDunbIkXF1Fcyctvk7yCA3YzHvmCnWB/uNvO6eO0PsfdVsQytqK
        aP38BG7e+fAjIiloJkT/ZY4NZLMpAkEAxaOZyo9R/H9q+EXCi5Ti06wVlKcBNBRo
        hy+oC1Sdgkpkvm5BryFPYCQJAkh8qyvTgCDurZJxdyQ2JGl4po9URQJBANHEikdD
        KGFyhuPZur0Ni/6j/NhQopuSmdx15D+BHWey+otioF3fc7DDGWlCmWCIF/u7LVYa
        ADmlNmucHesqbbs=
        -----END PRIVATE KEY-----

        """

    static let p384PEM = """
        -----BEGIN PRIVATE KEY-----
        MIG2AgEAMBAGByqGSM49AgEGBSuBBAAiBIGeMIGbAgEBBDA5+3RZTULSwSOuYkRQ
        fiFZaew7LpUFgpejxYWrweTnDpvTsy9Nb2MxoN/Ip9fxpZmhZANiAARh77e5+vKe
        vcJMOlNiJtSZwKS43suy33Ue9WCftXzdTw9K1lqKtTeEhj/MWxPU9wTnUf7ImFkw
        DrQpuFx9bbypr3nSioC5uwE1/KFTDbSYHHy5m9FoczUT0joff47P12A=
        -----END PRIVATE KEY-----

        """

    static let p384PublicPEM = """
        -----BEGIN PUBLIC KEY-----
        MHYwEAYHKoZIzj0CAQYFK4EEACIDYgAEYe+3ufrynr3CTDpTYibUmcCkuN7Lst91
        HvVgn7V83U8PStZairU3hIY/zFsT1PcE51H+yJhZMA60KbhcfW28qa950oqAubsB
        NfyhUw20mBx8uZvRaHM1E9I6H3+Oz9dg
        -----END PUBLIC KEY-----

        """

    /// A P-256 key encrypted with the passphrase "secret": must fail, never prompt.
    static let encryptedPEM = """
        -----BEGIN ENCRYPTED PRIVATE KEY-----
        MIHsMFcGCSqGSIb3DQEFDTBKMCkGCSqGSIb3DQEFDDAcBAgYGA6MkNE3yAICCAAw
        DAYIKoZIhvcNAgkFADAdBglghkgBZQMEASoEEGrMEQ4NeVC8rZ+LMjFzIN8EgZAc
        W0wUNU5d+Ps8evzZrQtTRFIs4LGmMXUVxxmZRJ1wmN2D8UZNyv28TLqv98BM1Qdv
        nnyOqfpy8n/jiCQyEy88wU2ZNgCtNLiDvp+C83725mY5yxoRLzqoEUUgyPM/5MF9
        ndokyyEuZTwItlVxv2XbbMTyxhnFbe6uDeA0cNQiH3Gv8rVFM+Yv0phUiRbuSvs=
        -----END ENCRYPTED PRIVATE KEY-----

        """

    static let ed448PEM = """
        -----BEGIN PRIVATE KEY-----
        MEcCAQAwBQYDK2VxBDsEOTMUd5JkZaU6RZCzwt47sWKS+wnjU6JH5zRLmOASriY8
        dGHtbVUBdmNV+q5g7lIyK1jLTY2iVmeUow==
        -----END PRIVATE KEY-----

        """
}

extension XCTestCase {
    /// Fails unless `expression` throws a `CryptoError` whose text contains `text`.
    func assertThrows<T>(
        _ expression: @autoclosure () throws -> T,
        containing text: String,
        file: StaticString = #filePath,
        line: UInt = #line
    ) {
        do {
            _ = try expression()
            XCTFail("expected an error containing \"\(text)\"", file: file, line: line)
        } catch {
            XCTAssertTrue(error is CryptoError, "\(type(of: error)): \(error)", file: file, line: line)
            XCTAssertTrue("\(error)".contains(text), "\"\(error)\" does not contain \"\(text)\"", file: file, line: line)
        }
    }
}
