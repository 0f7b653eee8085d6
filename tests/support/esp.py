"""An ESP's HTTP API on loopback, for the real django-anymail path: it fails the first calls if
asked to, then answers, and records every call."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeEspApi:
    """The first `failures` calls get a 500; the others `status` with the JSON `reply(body, n)` (n
    counts calls from 1). `received` holds each call's JSON body and `headers` its headers."""

    def __init__(self, reply, *, failures: int = 0, status: int = 200):
        self.received: list[dict] = []
        self.headers: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                outer.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                outer.headers.append(dict(self.headers))
                failed = len(outer.received) <= failures
                self.send_response(500 if failed else status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                answer = (
                    {"ErrorCode": 500, "Message": "Internal error"}
                    if failed
                    else reply(outer.received[-1], len(outer.received))
                )
                self.wfile.write(json.dumps(answer).encode())

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @classmethod
    def postmark(cls, *, failures: int = 0) -> "FakeEspApi":
        """Answers like Postmark's send API; the n-th call's message id is esp-n."""
        return cls(
            lambda body, n: {
                "To": body["To"],
                "SubmittedAt": "2026-11-22T10:00:00Z",
                "MessageID": f"esp-{n}",
                "ErrorCode": 0,
                "Message": "OK",
            },
            failures=failures,
        )

    def close(self):
        self.server.shutdown()
        self.server.server_close()
