"""Reads a SES_Seal with asn1tools and the module GBT38540-SES.asn beside this file.

usage: check_seal.py SEAL.der OUT_DIR

Decodes the seal strictly as DER by the standard's version 4 definitions, checks that
encoding the decoded value again gives the very same bytes (so the input is the canonical
DER of that value), prints what it read as JSON, and writes for an outside signature check:
OUT_DIR/info.der (esealInfo as received), OUT_DIR/signature.der (the signedValue bits) and
OUT_DIR/maker.der (the maker's certificate).
"""

import datetime
import hashlib
import json
import os
import resource
import sys

import asn1tools


def tlv_end(data, at):
    """Offset after the DER element that starts at `at`, and where its content starts."""
    length = data[at + 1]
    pos = at + 2
    if length & 0x80:
        n = length & 0x7F
        length = int.from_bytes(data[pos:pos + n], "big")
        pos += n
    return pos + length, pos


def main():
    # A decoder that loops on bad input must fail, not take the machine's memory.
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
    seal_path, out_dir = sys.argv[1], sys.argv[2]
    here = os.path.dirname(os.path.abspath(__file__))
    spec = asn1tools.compile_files(os.path.join(here, "GBT38540-SES.asn"), "der")
    der = open(seal_path, "rb").read()
    seal = spec.decode("SES-Seal", der)
    if spec.encode("SES-Seal", seal) != der:
        sys.exit("the seal is not the canonical DER of what it holds")
    info = seal["esealInfo"]
    prop = info["property"]
    for field in ("createDate", "validStart", "validEnd"):
        if not isinstance(prop[field], datetime.datetime):
            sys.exit(f"{field} is not a time")
    # esealInfo is the first element inside the outer SEQUENCE.
    _, content = tlv_end(der, 0)
    info_end, _ = tlv_end(der, content)
    with open(os.path.join(out_dir, "info.der"), "wb") as f:
        f.write(der[content:info_end])
    bits, bit_count = seal["signedValue"]
    if bit_count != len(bits) * 8 or not bits:
        sys.exit("the signature is not a whole number of bytes")
    with open(os.path.join(out_dir, "signature.der"), "wb") as f:
        f.write(bytes(bits))
    with open(os.path.join(out_dir, "maker.der"), "wb") as f:
        f.write(seal["cert"])
    list_type = {1: "CertInfoList", 2: "CertDigestList"}.get(prop["certListType"])
    if list_type is None:
        sys.exit(f"certListType {prop['certListType']} is neither 1 nor 2")
    cert_list = spec.decode(list_type, prop["certList"])
    print(json.dumps({
        "header_id": info["header"]["id"],
        "version": info["header"]["version"],
        "vid": info["header"]["vid"],
        "es_id": info["esID"],
        "type": prop["type"],
        "name": prop["name"],
        "cert_list_type": prop["certListType"],
        "cert_list": list_type,
        "cert_count": len(cert_list),
        # CertInfoList holds certificates: their SHA-256, to compare with a signer's.
        "cert_sha256": [hashlib.sha256(c).hexdigest() for c in cert_list]
        if list_type == "CertInfoList" else [],
        "create_date": prop["createDate"].isoformat(),
        "valid_start": prop["validStart"].isoformat(),
        "valid_end": prop["validEnd"].isoformat(),
        "picture_type": info["picture"]["type"],
        "picture_len": len(info["picture"]["data"]),
        "picture_mm": [info["picture"]["width"], info["picture"]["height"]],
        "sign_alg": seal["signAlgID"],
    }, ensure_ascii=False))


if __name__ == "__main__":
    main()
