"""A webhook receiver for alert tests: answers 500 to the first FAILS POSTs, then 200,
appending each accepted delivery to LOG as one JSON line {"id": X-Custody-Alert, "body": …}.

    python webhook_receiver.py LOG FAILS

Prints "listening http://127.0.0.1:PORT" once ready; serves until killed.
"""

import http.server
import json
import sys
import threading

log_path, fails = sys.argv[1], int(sys.argv[2])
lock = threading.Lock()
seen = {"posts": 0}


class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with lock:
            seen["posts"] += 1
            failing = seen["posts"] <= fails
            if not failing:
                with open(log_path, "a") as log:
                    record = {"id": self.headers.get("X-Custody-Alert"), "body": json.loads(body)}
                    log.write(json.dumps(record) + "\n")
        self.send_response(500 if failing else 200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
print(f"listening http://127.0.0.1:{server.server_address[1]}", flush=True)
server.serve_forever()
