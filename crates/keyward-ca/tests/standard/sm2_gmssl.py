"""Verifies a seal's SM2 signature with gmssl, a pure-Python SM2/SM3 implementation.

usage: sm2_gmssl.py INFO.der SIGNATURE.der MAKER.der

INFO.der is the signed content (esealInfo as received), SIGNATURE.der the DER
SEQUENCE { r, s } of the seal's signedValue, MAKER.der the maker's certificate. The
maker's public key is taken from the certificate by asn1tools (its SubjectPublicKeyInfo
must name the SM2 curve); the signature is checked over SM3 with the default
distinguishing ID 1234567812345678 (GB/T 35276). Exit 0 and "verified" when it holds,
exit 1 otherwise.
"""

import sys

import asn1tools
from gmssl import sm2

# Only what is needed to reach the public key of an X.509 certificate (RFC 5280).
X509 = """
Certificate DEFINITIONS EXPLICIT TAGS ::= BEGIN
Certificate ::= SEQUENCE {
    tbsCertificate TBSCertificate,
    signatureAlgorithm ANY,
    signature BIT STRING
}
TBSCertificate ::= SEQUENCE {
    version [0] INTEGER OPTIONAL,
    serialNumber INTEGER,
    signature ANY,
    issuer ANY,
    validity ANY,
    subject ANY,
    subjectPublicKeyInfo SubjectPublicKeyInfo,
    ...
}
SubjectPublicKeyInfo ::= SEQUENCE {
    algorithm SEQUENCE { algorithm OBJECT IDENTIFIER, parameters OBJECT IDENTIFIER },
    subjectPublicKey BIT STRING
}
END
"""

EC_PUBLIC_KEY = "1.2.840.10045.2.1"
SM2_CURVE = "1.2.156.10197.1.301"


def main():
    info, signature, maker = (open(p, "rb").read() for p in sys.argv[1:4])
    spec = asn1tools.compile_string(X509, "der")
    spki = spec.decode("Certificate", maker)["tbsCertificate"]["subjectPublicKeyInfo"]
    alg = spki["algorithm"]
    if (alg["algorithm"], alg["parameters"]) != (EC_PUBLIC_KEY, SM2_CURVE):
        sys.exit(f"the maker's key is not SM2: {alg}")
    point, bits = spki["subjectPublicKey"]
    if bits != 65 * 8 or point[0] != 4:
        sys.exit("the maker's key is not an uncompressed point")
    verifier = sm2.CryptSM2(private_key=None, public_key="", asn1=True)
    # Set directly: the constructor strips leading "0"/"4" digits, not just the 04 prefix.
    verifier.public_key = point[1:].hex()
    if verifier.verify_with_sm3(signature.hex(), info):
        print("verified")
    else:
        print("not verified")
        sys.exit(1)


if __name__ == "__main__":
    main()
