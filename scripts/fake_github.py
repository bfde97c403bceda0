"""A GitHub stand-in on loopback for scripts/schemathesis.sh, so that the broker's GitHub routes
answer as they do against the real GitHub without any traffic leaving the machine.

It knows one token, TOKEN, of the user `octo`, an active member of the GitHub organization
ORGANIZATION (mapped to the broker's org1 by schemathesis.sh), so that the success paths of the
GitHub routes are exercised too; it rejects every other token (401, as GitHub does for a bad
one), hands out one device code, keeps that code pending and calls any other code incorrect.
Prints `listening on PORT` once bound.

    python3 scripts/fake_github.py
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

DEVICE_CODE = "schemathesis-device-code"
TOKEN = "ghp_schemathesis"
LOGIN = "octo"
ORGANIZATION = "SchemathesisOrg"


class FakeGitHub(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def answer(self, status, body):
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self):
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self.answer(401, {"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"})
        elif self.path == "/user":
            self.answer(200, {"login": LOGIN, "id": 4242, "type": "User"})
        elif self.path == f"/orgs/{ORGANIZATION}/memberships/{LOGIN}":
            self.answer(200, {
                "state": "active", "role": "member", "organization": {"login": ORGANIZATION}, "user": {"login": LOGIN},
            })
        elif self.path.startswith("/user/teams"):
            self.answer(200, [])
        else:
            self.answer(404, {"message": "Not Found"})

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        form = parse_qs(self.rfile.read(length).decode("utf-8", "replace"))
        if self.path.startswith("/login/device/code"):
            self.answer(200, {
                "device_code": DEVICE_CODE, "user_code": "WDJB-MJHT",
                "verification_uri": "https://github.com/login/device", "expires_in": 900, "interval": 5,
            })
        elif self.path.startswith("/login/oauth/access_token"):
            pending = form.get("device_code") == [DEVICE_CODE]
            self.answer(200, {"error": "authorization_pending" if pending else "incorrect_device_code"})
        else:
            self.answer(404, {"message": "Not Found"})

    def log_message(self, format, *args):
        pass


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeGitHub)
    print(f"listening on {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
