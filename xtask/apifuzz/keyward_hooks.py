"""Schemathesis hooks for fuzzing the Keyward CA with the credentials its routes need.

At import, a key is issued and activated through the service's own API (a software P-256
key stands in for the token), and an unlock of it is opened, whose secret is kept. Then
every generated request is given what its route's rule asks for (the rule is read from
the service's OpenAPI document, `x-keyward-access`): the key's signature over the exact
bytes sent, the business's secret, the staff token. Path parameters are mostly pointed at
the fixture's key and business, so the handlers themselves are fuzzed, not only the
refusals in front of them.
"""

import hashlib
import json
import os
import struct

import requests
import schemathesis
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

BASE = os.environ["KEYWARD_FUZZ_BASE"].rstrip("/")
TOKEN = os.environ["KEYWARD_FUZZ_TOKEN"].strip()
SERIAL = "FUZZ-K1"
USCC = "91350100M000100Y43"
DOMAIN = b"Keyward CA request signature v1\0"
HANDLER = {"name": "张三", "id_number": "11010519491231002X", "phone": "13800138000"}


def _prefixed(b: bytes) -> bytes:
    return struct.pack(">I", len(b)) + b


def signing_input(purpose: str, nonce: str, body: bytes) -> bytes:
    """What the key signs: the service's one definition, rebuilt from its documentation."""
    return DOMAIN + _prefixed(purpose.encode()) + _prefixed(nonce.encode()) + hashlib.sha256(body).digest()


KEY = ec.generate_private_key(ec.SECP256R1())


def nonce() -> str:
    r = requests.post(f"{BASE}/v1/nonces", json={"key_serial": SERIAL}, timeout=10)
    r.raise_for_status()
    return r.json()["nonce"]


def signature_headers(method: str, path_and_query: str, body: bytes) -> dict:
    n = nonce()
    sig = KEY.sign(signing_input(f"{method.upper()} {path_and_query}", n, body), ec.ECDSA(hashes.SHA256()))
    return {"x-keyward-nonce": n, "x-keyward-signature": sig.hex()}


def _admin(method: str, path: str, body=None):
    r = requests.request(method, f"{BASE}{path}", json=body, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    if r.status_code >= 400:
        raise RuntimeError(f"{method} {path}: {r.status_code} {r.text}")
    return r.json()


def _setup():
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "token request")]))
        .sign(KEY, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
        .decode()
    )
    org = {"name": "广州示例科技有限公司", "uscc": USCC, "kind": "enterprise", "legal_address": "广州市天河区示例路1号"}
    cert = _admin("POST", "/admin/v1/certify", {"organisation": org, "csr_pem": csr, "years": 1})
    _admin(
        "POST",
        "/admin/v1/keys",
        {
            "key_serial": SERIAL,
            "organisation": org,
            "handler": HANDLER,
            "certificate_pem": cert["certificate_pem"],
            "so_pin": "SoPin-Fuzz-0001",
            "transport_pin": "Transport-7788",
        },
    )
    sent = requests.post(f"{BASE}/v1/keys/{SERIAL}/activation/code", json={}, timeout=10).json()
    outbox = _admin("GET", f"/admin/v1/sms?key_serial={SERIAL}")["messages"]
    text = [m["text"] for m in outbox if "编号" in m["text"]][-1]
    code = "".join(c for c in text.split("验证码")[1] if c.isdigit())[:6]
    r = requests.post(
        f"{BASE}/v1/keys/{SERIAL}/activation/redeem", json={"code": code, "ticket": sent["ticket"]}, timeout=10
    )
    r.raise_for_status()
    path = f"/v1/keys/{SERIAL}/activation/confirm"
    r = requests.post(f"{BASE}{path}", data=b"", headers=signature_headers("POST", path, b""), timeout=10)
    r.raise_for_status()
    created = requests.post(f"{BASE}/v1/keys/{SERIAL}/unlocks", json={"requester": HANDLER}, timeout=10).json()
    # A second business of the key, whose secret the fuzzing of `/secret` may rotate at will.
    path = f"/v1/keys/{SERIAL}/seals"
    body = json.dumps({"seal_name": "广州示例科技有限公司", "seal_kind": "official", "change": False}).encode()
    headers = {"content-type": "application/json", **signature_headers("POST", path, body)}
    seal = requests.post(f"{BASE}{path}", data=body, headers=headers, timeout=10)
    seal.raise_for_status()
    return created["business"]["id"], created["secret"], seal.json()["business"]["id"]


BUSINESS, SECRET, ROTATED = _setup()

# The rule of every operation, as the service documents it.
_DOC = requests.get(f"{BASE}/openapi.json", timeout=10).json()
ACCESS = {
    (method.upper(), path): op.get("x-keyward-access")
    for path, ops in _DOC["paths"].items()
    for method, op in ops.items()
}


def _chance(value, percent: int) -> bool:
    """A stable yes for `percent` of values: the same drawn value always gets the same answer
    (Hypothesis replays and shrinks examples, so a decision must not change between runs)."""
    digest = hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).digest()
    return digest[0] % 100 < percent


class KeywardAuth(requests.auth.AuthBase):
    """Adds the credential the route's rule asks for, over the request as it will be sent."""

    def __init__(self, access: str):
        self.access = access

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        if self.access in ("business_owner", "business_secret"):
            r.headers["x-keyward-business-secret"] = SECRET
            return r
        if self.access in ("key", "renewed_key", "business_key"):
            url = requests.utils.urlparse(r.url)
            path_and_query = url.path + (f"?{url.query}" if url.query else "")
            body = r.body or b""
            if isinstance(body, str):
                body = body.encode()
            r.headers.update(signature_headers(r.method, path_and_query, body))
        return r


@schemathesis.hook
def map_path_parameters(ctx, path_parameters):
    # Mostly the fixture's key and business (the handlers run); sometimes what was drawn.
    if path_parameters and _chance(path_parameters, 85):
        if "serial" in path_parameters:
            path_parameters["serial"] = SERIAL
        if "id" in path_parameters:
            rotates = ctx.operation is not None and ctx.operation.path.endswith("/secret")
            path_parameters["id"] = ROTATED if rotates else BUSINESS
        if "uscc" in path_parameters:
            path_parameters["uscc"] = USCC
    return path_parameters


@schemathesis.hook
def before_call(ctx, case, kwargs):
    access = ACCESS.get((case.operation.method.upper(), case.operation.path))
    if access is None:
        raise RuntimeError(f"{case.operation.method} {case.operation.path} has no x-keyward-access")
    # Sometimes the credential is left off, so the refusals are fuzzed too.
    drawn = [case.path_parameters, case.query, str(case.body)[:200]]
    if _chance(drawn, 90):
        kwargs["auth"] = KeywardAuth(access)


@schemathesis.hook
def after_call(ctx, case, response):
    # Should the fixture's own business get a fresh secret after all, keep the one that works.
    global SECRET
    if (
        case.operation.path == "/v1/businesses/{id}/secret"
        and response.status_code == 200
        and response.json()["business"]["id"] == BUSINESS
    ):
        SECRET = response.json()["secret"]
