"""Callback signatures and 安全模式 message encryption (AES-256-CBC, WeChat's framing).

An encrypted message is base64(AES-CBC(key, iv=key[:16], pkcs7_32(random16 + len4 + xml +
app_id))) with key = base64(EncodingAESKey + "="); `msg_signature` is the SHA-1 of the
sorted token, timestamp, nonce and the encrypted text.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import struct

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

BLOCK_BITS = 256  # WeChat pads to 32 bytes, not AES's 16


class CryptoError(Exception):
    """The encrypted message is malformed, for another account, or badly signed."""


def signature(*parts: str) -> str:
    """SHA-1 of the parts sorted and joined: WeChat's signature and msg_signature."""
    # surrogatepass: a query may decode to lone surrogates; they must not raise here.
    return hashlib.sha1("".join(sorted(parts)).encode("utf-8", "surrogatepass")).hexdigest()


def signed(expected: str, *parts: str) -> bool:
    """`expected` is the parts' signature (compared as bytes: any text, in constant time)."""
    given = expected.lower().encode("utf-8", "surrogatepass")
    return hmac.compare_digest(signature(*parts).encode(), given)


class MessageCrypto:
    """Decrypts callbacks and encrypts replies for one Official Account."""

    def __init__(self, token: str, aes_key: str, app_id: str) -> None:
        try:
            self.key = base64.b64decode(aes_key + "=")
        except binascii.Error as exc:
            raise ValueError("WECHAT_AES_KEY: not an EncodingAESKey") from exc
        if len(self.key) != 32:
            raise ValueError("WECHAT_AES_KEY: not an EncodingAESKey")
        self.token, self.app_id = token, app_id

    def _cipher(self) -> Cipher[modes.CBC]:
        return Cipher(algorithms.AES(self.key), modes.CBC(self.key[:16]))

    def decrypt(self, encrypted: str, msg_signature: str, timestamp: str, nonce: str) -> bytes:
        """The XML inside `encrypted`, after checking its signature and the app id."""
        if not signed(msg_signature, self.token, timestamp, nonce, encrypted):
            raise CryptoError("msg_signature mismatch")
        try:
            data = base64.b64decode(encrypted, validate=True)
            decryptor = self._cipher().decryptor()
            padded = decryptor.update(data) + decryptor.finalize()
            unpadder = padding.PKCS7(BLOCK_BITS).unpadder()
            plain = unpadder.update(padded) + unpadder.finalize()
            (length,) = struct.unpack(">I", plain[16:20])
        except (binascii.Error, ValueError, struct.error) as exc:
            raise CryptoError(f"cannot decrypt: {type(exc).__name__}") from exc
        xml, app_id = plain[20 : 20 + length], plain[20 + length :]
        if app_id.decode(errors="replace") != self.app_id:
            raise CryptoError("message for another app id")
        return xml

    def encrypt(self, xml: bytes, timestamp: str, nonce: str) -> tuple[str, str]:
        """The encrypted text of a reply and its msg_signature."""
        body = os.urandom(16) + struct.pack(">I", len(xml)) + xml + self.app_id.encode()
        padder = padding.PKCS7(BLOCK_BITS).padder()
        padded = padder.update(body) + padder.finalize()
        encryptor = self._cipher().encryptor()
        encrypted = base64.b64encode(encryptor.update(padded) + encryptor.finalize()).decode()
        return encrypted, signature(self.token, timestamp, nonce, encrypted)
