"""Is a shipping address usable? Decided on write, from the plaintext, and kept as a flag.

The exception queue needs to know whether an address is valid; it must never need the
plaintext to find out (personal parts are encrypted before they are stored). So the
answer is computed here, once, and stored beside the ciphertext.
"""

import re

PHONE = re.compile(r"^\+?[0-9][0-9 ()\-]{5,22}[0-9]$")
POSTAL_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 \-]{1,11}$")
COUNTRY = re.compile(r"^[A-Z]{2}$")


def address_problems(address: dict[str, str]) -> list[str]:
    """What is missing or malformed, in words an operator can act on; empty when usable."""
    problems = []
    for part in ("name", "line1", "city"):
        if not address[part].strip():
            problems.append(f"{part} missing")
    phone = address["phone"].strip()
    if not phone:
        problems.append("phone missing")
    elif not PHONE.match(phone) or sum(ch.isdigit() for ch in phone) < 6:
        problems.append("phone malformed")
    postal_code = address["postal_code"].strip()
    if not postal_code:
        problems.append("postal_code missing")
    elif not POSTAL_CODE.match(postal_code):
        problems.append("postal_code malformed")
    if not COUNTRY.match(address["country"]):
        problems.append("country is not an ISO 3166 alpha-2 code")
    return problems
