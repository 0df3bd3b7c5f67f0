#!/usr/bin/env python3
"""Checks a Web eID authentication token (format web-eid:1.0) the way a portal's server
would, written from the token format's specification, with Python's `cryptography`:

- the token is a JSON object with `unverifiedCertificate`, `algorithm`, `signature`, `format`
  and `appVersion`; `format` is `web-eid:1` (any 1.x);
- `algorithm` is one of the JWA names ES256/384/512, PS256/384/512, RS256/384/512, and its
  hash function is the one the signature uses;
- the signed value is hash(origin) + hash(nonce), rebuilt here from the origin and nonce the
  caller passes (the portal's own), never from the token;
- ECDSA signatures are the fixed-length r||s of JWA.

Usage: verify_token.py TOKEN_JSON_FILE ORIGIN NONCE
Exit 0 and "ok <subject>" when the signature holds; exit 1 and the reason otherwise.
"""
import base64
import json
import sys

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

HASHES = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}


def fail(why):
    print(why)
    sys.exit(1)


def main():
    if len(sys.argv) != 4:
        fail("usage: verify_token.py TOKEN_JSON_FILE ORIGIN NONCE")
    with open(sys.argv[1], encoding="utf-8") as f:
        token = json.load(f)
    origin, nonce = sys.argv[2], sys.argv[3]
    for field in ("unverifiedCertificate", "algorithm", "signature", "format", "appVersion"):
        if not isinstance(token.get(field), str) or not token[field]:
            fail(f"missing field {field}")
    fmt = token["format"]
    if not (fmt == "web-eid:1" or fmt.startswith("web-eid:1.")):
        fail(f"unknown format {fmt}")
    alg = token["algorithm"]
    if len(alg) != 5 or alg[:2] not in ("ES", "PS", "RS") or alg[2:] not in HASHES:
        fail(f"unknown algorithm {alg}")
    hash_cls = HASHES[alg[2:]]
    cert = x509.load_der_x509_certificate(base64.b64decode(token["unverifiedCertificate"], validate=True))
    signature = base64.b64decode(token["signature"], validate=True)

    def digest(text):
        h = hashes.Hash(hash_cls())
        h.update(text.encode("utf-8"))
        return h.finalize()

    signed = digest(origin) + digest(nonce)
    key = cert.public_key()
    try:
        if alg.startswith("ES"):
            if not isinstance(key, ec.EllipticCurvePublicKey):
                fail("an ES algorithm with a key that is not EC")
            half = (key.curve.key_size + 7) // 8
            if len(signature) != 2 * half:
                fail(f"an ECDSA signature of {len(signature)} bytes, not {2 * half}")
            r = int.from_bytes(signature[:half], "big")
            s = int.from_bytes(signature[half:], "big")
            key.verify(encode_dss_signature(r, s), signed, ec.ECDSA(hash_cls()))
        else:
            if not isinstance(key, rsa.RSAPublicKey):
                fail("an RSA algorithm with a key that is not RSA")
            pad = (
                padding.PKCS1v15()
                if alg.startswith("RS")
                else padding.PSS(mgf=padding.MGF1(hash_cls()), salt_length=padding.PSS.DIGEST_LENGTH)
            )
            key.verify(signature, signed, pad, hash_cls())
    except InvalidSignature:
        fail("the signature does not verify for this origin and nonce")
    print("ok " + cert.subject.rfc4514_string())


if __name__ == "__main__":
    main()
