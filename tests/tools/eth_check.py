"""Independent check of Ethereum signatures, for custody's tests. Run it with tools/venv/bin/python
(scripts/setup installs eth-account there).

It reads one JSON object on stdin and prints one JSON object on stdout:

  {"kind":"tx","raw":"0x..."}
    -> {"from":"0x<EIP-55>","hash":"0x...","nonce":N,"chain_id":N|null,"type":0|1|2|3|4,
        "to":"0x<EIP-55>"|null,"value":"<decimal wei>"}
       (legacy transactions are type 0, with chain_id null when signed without EIP-155; "to" is
       null for a contract creation; "hash" is keccak-256 of the raw bytes.)
  {"kind":"message","message":"text or 0xhex","encoding":"utf8"|"hex","signature":"0x..."}
    -> {"from":"0x..."}   (EIP-191 personal_sign: encode_defunct + Account.recover_message)
  {"kind":"typed_data","typed_data":{...full EIP-712 JSON...},"signature":"0x..."}
    -> {"from":"0x...","hash":"0x<the EIP-712 signing hash>"}
       (encode_typed_data(full_message=...) + Account.recover_message;
       "typed_data" may also be a string holding that JSON, read with Python's json module, so
       integers of any size keep their digits.)

On any error it prints {"error":"..."} and exits 1.
"""

import json
import sys

from eth_account import Account
from eth_account._utils.legacy_transactions import Transaction
from eth_account._utils.signing import extract_chain_id
from eth_account.messages import _hash_eip191_message, encode_defunct, encode_typed_data
from eth_account.typed_transactions import TypedTransaction
from eth_utils import keccak, to_checksum_address
from hexbytes import HexBytes


class CheckError(Exception):
    pass


def field(obj, name, kind):
    if name not in obj:
        raise CheckError(f"missing field {name!r}")
    value = obj[name]
    if not isinstance(value, kind):
        raise CheckError(f"field {name!r} must be a {kind.__name__}")
    return value


def hex_bytes(text, what):
    if not (text.startswith("0x") or text.startswith("0X")):
        raise CheckError(f"{what} must be 0x-prefixed hex")
    try:
        return bytes.fromhex(text[2:])
    except ValueError:
        raise CheckError(f"{what} is not valid hex") from None


def address_or_none(value):
    if value is None:
        return None
    raw = HexBytes(value)
    if len(raw) == 0:
        return None
    if len(raw) != 20:
        raise CheckError(f"'to' has {len(raw)} bytes, expected 20")
    return to_checksum_address(raw)


def check_tx(req):
    raw = hex_bytes(field(req, "raw", str), "raw")
    if not raw:
        raise CheckError("raw is empty")
    sender = Account.recover_transaction(raw)
    if raw[0] <= 0x7F:
        # EIP-2718 typed transaction: type byte || payload.
        typed = TypedTransaction.from_bytes(HexBytes(raw))
        fields = typed.as_dict()
        tx_type = typed.transaction_type
        nonce = fields["nonce"]
        chain_id = fields["chainId"]
        to = fields.get("to")
        value = fields["value"]
    else:
        legacy = Transaction.from_bytes(raw)
        tx_type = 0
        nonce = legacy.nonce
        chain_id, _ = extract_chain_id(legacy.v)
        to = legacy.to
        value = legacy.value
    return {
        "from": sender,
        "hash": "0x" + keccak(raw).hex(),
        "nonce": int(nonce),
        "chain_id": None if chain_id is None else int(chain_id),
        "type": int(tx_type),
        "to": address_or_none(to),
        "value": str(int(value)),
    }


def check_message(req):
    message = field(req, "message", str)
    encoding = req.get("encoding", "utf8")
    signature = hex_bytes(field(req, "signature", str), "signature")
    if encoding == "utf8":
        signable = encode_defunct(text=message)
    elif encoding == "hex":
        signable = encode_defunct(primitive=hex_bytes(message, "message"))
    else:
        raise CheckError(f"encoding must be 'utf8' or 'hex', not {encoding!r}")
    return {"from": Account.recover_message(signable, signature=signature)}


def check_typed_data(req):
    typed_data = req.get("typed_data")
    if isinstance(typed_data, str):
        try:
            typed_data = json.loads(typed_data)
        except ValueError as e:
            raise CheckError(f"typed_data is not JSON: {e}") from None
    if not isinstance(typed_data, dict):
        raise CheckError("field 'typed_data' must be a dict, or a string holding one")
    signature = hex_bytes(field(req, "signature", str), "signature")
    signable = encode_typed_data(full_message=typed_data)
    return {
        "from": Account.recover_message(signable, signature=signature),
        "hash": "0x" + _hash_eip191_message(signable).hex(),
    }


CHECKS = {"tx": check_tx, "message": check_message, "typed_data": check_typed_data}


def main():
    try:
        try:
            req = json.loads(sys.stdin.read())
        except ValueError as e:
            raise CheckError(f"stdin is not JSON: {e}") from None
        if not isinstance(req, dict):
            raise CheckError("stdin must hold one JSON object")
        kind = req.get("kind")
        if kind not in CHECKS:
            raise CheckError(f"kind must be one of {sorted(CHECKS)}, not {kind!r}")
        out = CHECKS[kind](req)
    except Exception as e:  # every failure becomes the one JSON error line
        msg = str(e) if isinstance(e, CheckError) else f"{type(e).__name__}: {e}"
        print(json.dumps({"error": msg}))
        return 1
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
