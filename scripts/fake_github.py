"""A GitHub stand-in on loopback for scripts/schemathesis.sh, so that the broker's GitHub routes
answer as they do against the real GitHub without any traffic leaving the machine.

It rejects every token (401, as GitHub does for a bad one), hands out one device code, keeps
that code pending and calls any other code incorrect. Prints `listening on PORT` once bound.

    python3 scripts/fake_github.py
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

DEVICE_CODE = "schemathesis-device-code"


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
        self.answer(401, {"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"})

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
