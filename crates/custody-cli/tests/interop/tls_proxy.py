"""A TLS-terminating reverse proxy in front of a custody server, as a self-hosted deployment
puts one: a fresh CA (written to OUT_DIR/ca.pem) signs a certificate for 127.0.0.1, and
every request to https://127.0.0.1:PORT is passed to BACKEND unchanged.

    python tls_proxy.py BACKEND_URL OUT_DIR

Prints "listening https://127.0.0.1:PORT" once ready; serves until killed.
"""

import datetime
import http.server
import ipaddress
import os
import ssl
import sys
import threading
import urllib.error
import urllib.request

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def certificates(out_dir):
    now = datetime.datetime.now(datetime.timezone.utc)
    week = datetime.timedelta(days=7)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "custody test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - week)
        .not_valid_after(now + week)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - week)
        .not_valid_after(now + week)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    with open(os.path.join(out_dir, "ca.pem"), "wb") as f:
        f.write(ca.public_bytes(pem))
    chain = os.path.join(out_dir, "server.pem")
    with open(chain, "wb") as f:
        f.write(leaf.public_bytes(pem))
    private = os.path.join(out_dir, "server.key")
    with open(private, "wb") as f:
        f.write(
            key.private_bytes(
                pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    return chain, private


def handler(backend):
    class Proxy(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def relay(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            headers = {
                k: v
                for k, v in self.headers.items()
                if k.lower() not in ("host", "connection", "content-length")
            }
            request = urllib.request.Request(
                backend + self.path, data=body, headers=headers, method=self.command
            )
            try:
                with urllib.request.urlopen(request) as r:
                    status, reply, answer = r.status, r.headers, r.read()
            except urllib.error.HTTPError as e:
                status, reply, answer = e.code, e.headers, e.read()
            self.send_response(status)
            for k, v in reply.items():
                if k.lower() not in ("connection", "transfer-encoding", "content-length"):
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        do_GET = do_POST = do_PUT = do_DELETE = relay

        def log_message(self, *args):
            pass

    return Proxy


def main():
    backend, out_dir = sys.argv[1].rstrip("/"), sys.argv[2]
    chain, private = certificates(out_dir)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler(backend))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(chain, private)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    print(f"listening https://127.0.0.1:{server.server_address[1]}", flush=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    threading.Event().wait()


if __name__ == "__main__":
    main()
