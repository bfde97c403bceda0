"""What third-party OAuth 2 and JOSE libraries expect of the broker (issue 15), checked with
libraries nobody here wrote, installed in the tests' virtual environment by scripts/test.sh:

- authlib: RFC 8414 metadata validation, RFC 9068 resource-server validation of access tokens
  (JWTBearerTokenValidator), an OAuth 2 client refreshing and revoking through /oauth/*;
- joserfc: a JOSE library verifying tokens from the JWKS alone (every algorithm, Ed25519 too);
- PyJWT: another JOSE core (it knows EdDSA but not RFC 9864's Ed25519);
- requests-oauthlib (oauthlib): a second OAuth 2 client refreshing through /oauth/token.

Usage: standards_interop.py BASE_URL ISSUER ALG GITHUB_PAT
The broker at BASE_URL has org1 (whose cluster is org1), alice (password below, member of
org1), and GitHub logins through a fake GitHub where GITHUB_PAT is alice's. Exits non-zero with
the reason on the first failure; prints "ok ALG" when every check passed.
"""

import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
import warnings

warnings.simplefilter("ignore")  # authlib's deprecation notices are not ours
os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"  # the broker listens on plain loopback HTTP

import jwt as pyjwt  # noqa: E402
from authlib.integrations.requests_client import OAuth2Session as AuthlibSession  # noqa: E402
from authlib.integrations.base_client.errors import OAuthError as AuthlibOAuthError  # noqa: E402
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata  # noqa: E402
from authlib.oauth2.rfc6750.errors import InvalidTokenError  # noqa: E402
from authlib.oauth2.rfc9068 import JWTBearerTokenValidator  # noqa: E402
from authlib.oauth2.rfc9068.claims import JWTAccessTokenClaims  # noqa: E402
from joserfc import jwt as jose_jwt  # noqa: E402
from joserfc.errors import BadSignatureError  # noqa: E402
from joserfc.jwk import KeySet  # noqa: E402
from joserfc.jws import JWSRegistry  # noqa: E402
from joserfc.jwt import JWTClaimsRegistry  # noqa: E402
from requests_oauthlib import OAuth2Session as OAuthlibSession  # noqa: E402

BASE, ISSUER, ALG, PAT = sys.argv[1:5]
PASSWORD = "correct horse battery staple"
THIRD_PARTY = "notebook-app"
RECOMMENDED = {name for name, algorithm in JWSRegistry.algorithms.items() if getattr(algorithm, "recommended", False)}


def fail(message):
    print("FAILED:", message)
    sys.exit(1)


def check(condition, message):
    if not condition:
        fail(message)


def get_json(path):
    with urllib.request.urlopen(BASE + path) as answer:
        return json.load(answer), dict(answer.headers)


def post(path, form=None, body=None):
    """(status, JSON answer) of a POST; the form is URL-encoded, the body JSON."""
    if form is not None:
        data, kind = urllib.parse.urlencode(form).encode(), "application/x-www-form-urlencoded"
    else:
        data, kind = json.dumps(body).encode(), "application/json"
    request = urllib.request.Request(BASE + path, data=data, headers={"Content-Type": kind})
    try:
        with urllib.request.urlopen(request) as answer:
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


# RFC 8414, field by field ---------------------------------------------------------------------

metadata, headers = get_json("/.well-known/oauth-authorization-server")
check(headers.get("Content-Type", "").startswith("application/json"), "metadata is not application/json")
# Section 2, each member the broker publishes, and what it must hold.
check(metadata["issuer"] == ISSUER, "issuer differs from the tokens' iss")
check(urllib.parse.urlsplit(metadata["issuer"]).scheme in ("https", "http"), "issuer is not a URL")
check(not urllib.parse.urlsplit(metadata["issuer"]).query, "issuer has a query")
check(not urllib.parse.urlsplit(metadata["issuer"]).fragment, "issuer has a fragment")
check(metadata["token_endpoint"] == ISSUER + "/oauth/token", "token_endpoint")
check(metadata["jwks_uri"] == ISSUER + "/.well-known/jwks.json", "jwks_uri")
check(metadata["response_types_supported"] == [], "response_types_supported: no authorization endpoint, so none")
check("authorization_endpoint" not in metadata, "authorization_endpoint advertised but none exists")
check("code_challenge_methods_supported" not in metadata, "PKCE advertised without an authorization endpoint")
check(
    metadata["grant_types_supported"] == ["refresh_token", "urn:ietf:params:oauth:grant-type:token-exchange"],
    "grant_types_supported: %r" % metadata.get("grant_types_supported"),
)
check(metadata["token_endpoint_auth_methods_supported"] == ["none"], "token endpoint auth methods")
check(metadata["revocation_endpoint"] == ISSUER + "/oauth/revoke", "revocation_endpoint")
check(metadata["revocation_endpoint_auth_methods_supported"] == ["none"], "revocation auth methods")
check(metadata["introspection_endpoint"] == ISSUER + "/oauth/introspect", "introspection_endpoint")
check(metadata["introspection_endpoint_auth_methods_supported"] == ["Bearer"], "introspection auth methods")
check(not [key for key in metadata if key.startswith("id_token")], "id_token_* advertised without ID tokens")
known = {
    "issuer", "token_endpoint", "jwks_uri", "response_types_supported", "grant_types_supported",
    "token_endpoint_auth_methods_supported", "revocation_endpoint", "revocation_endpoint_auth_methods_supported",
    "introspection_endpoint", "introspection_endpoint_auth_methods_supported",
}
check(set(metadata) == known, "unexpected members: %r" % (set(metadata) - known))
# authlib's validator, every member but response_types_supported, which it reads as "missing"
# when it is the empty array RFC 8414 allows (the broker has no authorization endpoint).
validated = AuthorizationServerMetadata(metadata)
for name in dir(validated):
    if name.startswith("validate_") and name != "validate_response_types_supported":
        getattr(validated, name)()
openid, _ = get_json("/.well-known/openid-configuration")
for key in known:
    check(openid.get(key) == metadata[key], "openid-configuration differs in " + key)
check(not [key for key in openid if key.startswith("id_token")], "id_token_* in openid-configuration")

# The JWKS: every key says what it is for --------------------------------------------------------

jwks, _ = get_json("/.well-known/jwks.json")
check(jwks["keys"], "empty JWKS")
for key in jwks["keys"]:
    check(key.get("use") == "sig", "a key without use=sig: %r" % key.get("kid"))
    check(key.get("alg") and key.get("kid"), "a key without alg or kid")

# Tokens, verified from the JWKS alone ------------------------------------------------------------


def verify_everywhere(token, client_id):
    header = pyjwt.get_unverified_header(token)
    check(header["typ"] == "at+jwt" and header["alg"] == ALG, "header %r" % header)
    # authlib, as an RFC 9068 resource server (section 4): typ, iss, aud, exp, and the required
    # claims sub, client_id, iat, jti. Its validator decodes with joserfc's recommended
    # algorithms only (HS256, RS256, ES256): it refuses EdDSA and Ed25519 tokens, so for those
    # the same claim rules run on what joserfc decoded with the algorithm named.
    class Validator(JWTBearerTokenValidator):
        def get_jwks(self):
            return jwks

    validator = Validator(issuer=ISSUER, resource_server="org1")
    if ALG in RECOMMENDED:
        claims = validator.authenticate_token(token)
    else:
        try:
            validator.authenticate_token(token)
            fail("authlib's validator accepted %s: docs/gateways.md says it does not" % ALG)
        except InvalidTokenError:
            pass
        decoded = jose_jwt.decode(token, KeySet.import_key_set(jwks), algorithms=[ALG])
        claims = JWTAccessTokenClaims(decoded.claims, decoded.header, {
            "iss": {"essential": True, "validate": validator.validate_iss},
            "exp": {"essential": True}, "aud": {"essential": True, "value": "org1"}, "sub": {"essential": True},
            "client_id": {"essential": True}, "iat": {"essential": True}, "jti": {"essential": True},
        })
    claims.validate()
    check(claims["client_id"] == client_id, "authlib: client_id %r" % claims.get("client_id"))
    # joserfc, from the JWKS alone, every algorithm.
    decoded = jose_jwt.decode(token, KeySet.import_key_set(jwks), algorithms=[ALG])
    JWTClaimsRegistry(
        iss={"essential": True, "value": ISSUER},
        aud={"essential": True, "value": "org1"},
        sub={"essential": True, "value": "alice"},
        exp={"essential": True},
        iat={"essential": True},
        jti={"essential": True},
        client_id={"essential": True, "value": client_id},
        auth_time={"essential": True},
        amr={"essential": True},
    ).validate(decoded.claims)
    check(decoded.claims["auth_time"] <= decoded.claims["iat"], "auth_time after iat")
    head, payload, signature = token.split(".")
    forged = head + "." + payload + "." + ("A" if signature[0] != "A" else "B") + signature[1:]
    try:
        jose_jwt.decode(forged, KeySet.import_key_set(jwks), algorithms=[ALG])
        fail("joserfc accepted a forged signature")
    except BadSignatureError:
        pass
    # PyJWT, a JOSE core of its own: it knows EdDSA, not RFC 9864's Ed25519 (docs/gateways.md).
    if ALG in pyjwt.algorithms.get_default_algorithms():
        signing_key = pyjwt.PyJWKClient(BASE + "/.well-known/jwks.json", cache_keys=False).get_signing_key_from_jwt(token)
        claims = pyjwt.decode(
            token, signing_key.key, algorithms=[ALG], audience="org1", issuer=ISSUER,
            options={"require": ["exp", "iat", "iss", "aud", "sub", "jti", "client_id"]},
        )
        check(claims["client_id"] == client_id, "PyJWT: client_id")
    return decoded.claims


# A third-party client: a GitHub token exchanged for a token of org1 (RFC 8693), with its own
# client_id, which the tokens and their renewals carry.
status, exchanged = post("/oauth/token", form={
    "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange", "client_id": THIRD_PARTY,
    "subject_token": PAT, "subject_token_type": "urn:ietf:params:oauth:token-type:access_token", "audience": "org1",
})
check(status == 200, "token exchange: %d %r" % (status, exchanged))
verify_everywhere(exchanged["access_token"], THIRD_PARTY)

# authlib's OAuth 2 client refreshes through /oauth/token (a public client: client_id in the form).
# The advertised URLs are the issuer's; the broker under test listens on BASE.
endpoint = BASE + "/oauth/token"
authlib_client = AuthlibSession(client_id=THIRD_PARTY, token_endpoint_auth_method="none")
renewed = authlib_client.refresh_token(endpoint, refresh_token=exchanged["refresh_token"])
check(renewed["refresh_token"] != exchanged["refresh_token"], "authlib: the refresh token did not rotate")
check(renewed["token_type"] == "Bearer" and renewed["expires_in"] > 0, "authlib: token response %r" % renewed)
verify_everywhere(renewed["access_token"], THIRD_PARTY)

# requests-oauthlib (oauthlib) refreshes the next one.
oauthlib_client = OAuthlibSession(client_id=THIRD_PARTY, token=dict(renewed))
again = oauthlib_client.refresh_token(endpoint, refresh_token=renewed["refresh_token"], client_id=THIRD_PARTY)
check(again["refresh_token"] != renewed["refresh_token"], "oauthlib: the refresh token did not rotate")
verify_everywhere(again["access_token"], THIRD_PARTY)

# The SlideRule clients' session is the configured client's: another client may not renew it
# (RFC 6749 section 6), and the refusal leaves the token good for its own client.
status, bundle = post("/api/org_token/", body={"username": "alice", "password": PASSWORD, "org_name": "org1"})
check(status == 200, "password login: %d" % status)
verify_everywhere(bundle["access"], "sliderule")
try:
    AuthlibSession(client_id=THIRD_PARTY, token_endpoint_auth_method="none").refresh_token(
        endpoint, refresh_token=bundle["refresh"])
    fail("another client renewed the SlideRule session")
except AuthlibOAuthError as error:
    check(error.error == "invalid_grant", "wrong client: %r" % error.error)
own = AuthlibSession(client_id="sliderule", token_endpoint_auth_method="none").refresh_token(
    endpoint, refresh_token=bundle["refresh"])
verify_everywhere(own["access_token"], "sliderule")

# RFC 7009 through authlib: revoking the refresh token ends the session.
revocation = authlib_client.revoke_token(BASE + "/oauth/revoke", token=again["refresh_token"],
                                         token_type_hint="refresh_token")
check(revocation.status_code == 200, "revocation: %d" % revocation.status_code)
try:
    authlib_client.refresh_token(endpoint, refresh_token=again["refresh_token"])
    fail("a revoked refresh token renewed")
except AuthlibOAuthError as error:
    check(error.error == "invalid_grant", "revoked: %r" % error.error)

print("ok", ALG)
