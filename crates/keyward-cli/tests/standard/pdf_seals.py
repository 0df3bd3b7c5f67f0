"""Lists the signatures of a stamped PDF as pyHanko reads them, with the seal kept by each.

usage: pdf_seals.py FILE.pdf ROOT.pem OUT_DIR

For every signature field with a value, in the document's order: its name, the SHA-256 of
the signer's certificate as the CMS carries it, whether pyHanko finds the signature intact
over its byte range and its signer trusted with ROOT.pem as the one trust anchor, and, when the field's appearance keeps a GB/T 38540 seal under
/Keyward_SES_Seal, that seal written to OUT_DIR/seal-N.der (N from 1). Printed as JSON.
"""

import hashlib
import json
import os
import sys

from pyhanko.keys import load_cert_from_pemder
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko_certvalidator import ValidationContext


def seal_of(field):
    """The seal stream's bytes in the appearance of the field's widget, if any."""
    widgets = [field]
    if "/Kids" in field:
        widgets = [k.get_object() for k in field["/Kids"]]
    for w in widgets:
        ap = w.get("/AP")
        if ap is None:
            continue
        normal = ap.get_object()["/N"].get_object()
        if "/Keyward_SES_Seal" in normal:
            return normal["/Keyward_SES_Seal"].get_object().data
    return None


def main():
    pdf, root, out_dir = sys.argv[1], sys.argv[2], sys.argv[3]
    trust = ValidationContext(trust_roots=[load_cert_from_pemder(root)])
    with open(pdf, "rb") as f:
        reader = PdfFileReader(f)
        found = []
        for n, sig in enumerate(reader.embedded_signatures, start=1):
            status = validate_pdf_signature(sig, signer_validation_context=trust)
            entry = {
                "field": sig.field_name,
                "signer_sha256": hashlib.sha256(sig.signer_cert.dump()).hexdigest(),
                "intact": bool(status.intact and status.valid),
                "trusted": bool(status.trusted),
                "seal": None,
            }
            seal = seal_of(sig.sig_field)
            if seal is not None:
                path = os.path.join(out_dir, f"seal-{n}.der")
                with open(path, "wb") as s:
                    s.write(seal)
                entry["seal"] = path
            found.append(entry)
    print(json.dumps(found))


if __name__ == "__main__":
    main()
