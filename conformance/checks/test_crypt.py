"""Encryption and decryption as applications call them: Key.encrypt / Key.decrypt of bytes (C_Encrypt, C_Decrypt) and
of an iterable of chunks (C_EncryptUpdate ... C_EncryptFinal), with AES (CBC, CBC-PAD, ECB, CTR, GCM) and RSA (OAEP,
PKCS #1 v1.5); PKCS#11 v3.0 §5.8 (encryption functions), §5.10 (decryption functions) and the Current Mechanisms
specification's AES and RSA sections. Results are cross-checked with `cryptography` both ways.

Mechanism parameters with a structure (CK_AES_CTR_PARAMS, CK_GCM_PARAMS) are passed as the structure's bytes
(python-pkcs11's escape hatch for raw parameters, the same in 0.7.0 to 0.10.x): 0.10 has CTRParams and GCMParams,
older releases have neither, and the checks must make the same calls under every binding."""

from __future__ import annotations

import ctypes

import pytest
from cryptography.hazmat.primitives import hashes, padding as sym_padding
from cryptography.hazmat.primitives.asymmetric import padding as rsa_padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicNumbers
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pkcs11 import MGF, Attribute, KeyType, Mechanism

from ..live.capabilities import require_mechanism
from ..live.keys import readable_secret_key, rsa_pair, secret_key
from ..live.probes import OK, message, outcome_of

IV = bytes(range(16))  # a fixed IV: ciphertexts are then deterministic and comparable with cryptography's
PAD_LENGTHS = (0, 1, 15, 16, 17, 4096)  # empty, around one block, large
BLOCK_LENGTHS = (16, 32, 4096)  # multiples of the AES block for the unpadded modes
OAEP = {"sha1": (Mechanism.SHA_1, MGF.SHA1, hashes.SHA1), "sha256": (Mechanism.SHA256, MGF.SHA256, hashes.SHA256)}







def readable_aes_key(vendor, session, bits: int, what: str):
    """(key, its value): an AES key made non-sensitive and extractable, so `cryptography` can use the same key."""
    return readable_secret_key(vendor, session, KeyType.AES, bits, what=what)


def aes(value: bytes, mode) -> Cipher:
    return Cipher(algorithms.AES(value), mode)


def cbc_pad_encrypt(value: bytes, data: bytes) -> bytes:
    padder = sym_padding.PKCS7(128).padder()
    enc = aes(value, modes.CBC(IV)).encryptor()
    return enc.update(padder.update(data) + padder.finalize()) + enc.finalize()


def cbc_pad_decrypt(value: bytes, data: bytes) -> bytes:
    dec = aes(value, modes.CBC(IV)).decryptor()
    unpadder = sym_padding.PKCS7(128).unpadder()
    return unpadder.update(dec.update(data) + dec.finalize()) + unpadder.finalize()


def raw(value: bytes, mode, data: bytes, *, decrypt: bool = False) -> bytes:
    ctx = aes(value, mode).decryptor() if decrypt else aes(value, mode).encryptor()
    return ctx.update(data) + ctx.finalize()


class CK_AES_CTR_PARAMS(ctypes.Structure):
    _fields_ = [("ulCounterBits", ctypes.c_ulong), ("cb", ctypes.c_ubyte * 16)]


class CK_GCM_PARAMS(ctypes.Structure):
    _fields_ = [("pIv", ctypes.c_void_p), ("ulIvLen", ctypes.c_ulong), ("ulIvBits", ctypes.c_ulong),
                ("pAAD", ctypes.c_void_p), ("ulAADLen", ctypes.c_ulong), ("ulTagBits", ctypes.c_ulong)]


class GcmParam:
    """CK_GCM_PARAMS as bytes; the IV and AAD buffers it points into live as long as this object."""

    def __init__(self, nonce: bytes, aad: bytes, tag_bits: int = 128) -> None:
        self._iv = ctypes.create_string_buffer(nonce, len(nonce))
        self._aad = ctypes.create_string_buffer(aad, len(aad))
        self.param = bytes(CK_GCM_PARAMS(ctypes.addressof(self._iv), len(nonce), 8 * len(nonce),
                                         ctypes.addressof(self._aad), len(aad), tag_bits))


@pytest.mark.check("encrypt.aes_cbc_pad_{bits}", layer="module",
                   spec="PKCS#11 v3.0 §5.8 C_Encrypt, §5.10 C_Decrypt; Current Mechanisms: AES-CBC with PKCS padding "
                        "(CKM_AES_CBC_PAD); PKCS #7 padding")
@pytest.mark.parametrize("bits", [128, 192, 256])
def test_aes_cbc_pad(vendor, bits):
    """CKM_AES_CBC_PAD is AES-CBC "and the block cipher padding method detailed in PKCS #7": a one-shot C_Encrypt of
    a message of each boundary length (empty, one byte, a block and its neighbours, 4 KiB) decrypts with
    cryptography (CBC, PKCS #7 unpadding) to the message, and C_Decrypt of cryptography's ciphertext gives it back."""
    require_mechanism(vendor, Mechanism.AES_CBC_PAD)
    session = vendor.open_session()
    key, value = readable_aes_key(vendor, session, bits, f"cbc-pad-{bits}")
    wrong_encrypt, wrong_decrypt = [], []
    for n in PAD_LENGTHS:
        data = message(n)
        ours = key.encrypt(data, mechanism=Mechanism.AES_CBC_PAD, mechanism_param=IV)
        try:
            if cbc_pad_decrypt(value, ours) != data:
                wrong_encrypt.append(n)
        except ValueError:  # bad padding or length
            wrong_encrypt.append(n)
        if key.decrypt(cbc_pad_encrypt(value, data), mechanism=Mechanism.AES_CBC_PAD, mechanism_param=IV) != data:
            wrong_decrypt.append(n)
    assert not wrong_encrypt, f"C_Encrypt of {wrong_encrypt}-byte messages is not AES-CBC with PKCS #7 padding"
    assert not wrong_decrypt, f"C_Decrypt of cryptography's ciphertexts of {wrong_decrypt}-byte messages differs"


@pytest.mark.check("encrypt.aes_cbc", layer="module",
                   spec="PKCS#11 v3.0 §5.8 C_Encrypt, §5.10 C_Decrypt; Current Mechanisms: AES-CBC (CKM_AES_CBC)")
def test_aes_cbc(vendor):
    """CKM_AES_CBC is AES in cipher-block chaining mode without padding: messages of one, two and 256 blocks encrypt
    to cryptography's AES-CBC ciphertext, and decrypt back."""
    require_mechanism(vendor, Mechanism.AES_CBC)
    session = vendor.open_session()
    key, value = readable_aes_key(vendor, session, 128, "cbc")
    wrong = []
    for n in BLOCK_LENGTHS:
        data = message(n)
        theirs = raw(value, modes.CBC(IV), data)
        ours = key.encrypt(data, mechanism=Mechanism.AES_CBC, mechanism_param=IV)
        back = key.decrypt(theirs, mechanism=Mechanism.AES_CBC, mechanism_param=IV)
        if ours != theirs or back != data:
            wrong.append(n)
    assert not wrong, f"CKM_AES_CBC of {wrong}-byte messages differs from AES-CBC (cryptography)"


@pytest.mark.check("encrypt.aes_cbc_unaligned", layer="module",
                   spec="PKCS#11 v3.0 §5.1 CKR_DATA_LEN_RANGE, §5.8 C_Encrypt; Current Mechanisms: AES-CBC "
                        "(CKM_AES_CBC), input length a multiple of the block size")
def test_aes_cbc_unaligned(vendor, observe):
    """CKM_AES_CBC has no padding: its input must be "a multiple of the block size", and CKR_DATA_LEN_RANGE is "the
    plaintext input data ... is not a multiple of some particular block size" (v3.0 §5.1). C_Encrypt of 17 bytes
    must fail; characterises how (CKR_DATA_LEN_RANGE expected)."""
    require_mechanism(vendor, Mechanism.AES_CBC)
    session = vendor.open_session()
    key = secret_key(vendor, session, KeyType.AES, 128, what="cbc-unaligned")
    result = outcome_of(lambda: key.encrypt(message(17), mechanism=Mechanism.AES_CBC, mechanism_param=IV))
    observe(result)
    assert result != OK, "C_Encrypt with CKM_AES_CBC accepted a 17-byte message (not a multiple of the block size)"


@pytest.mark.check("encrypt.aes_ecb", layer="module",
                   spec="PKCS#11 v3.0 §5.8 C_Encrypt, §5.10 C_Decrypt; Current Mechanisms: AES-ECB (CKM_AES_ECB)")
def test_aes_ecb(vendor):
    """CKM_AES_ECB is the AES block cipher itself: one and two blocks encrypt to cryptography's AES-ECB ciphertext,
    and cryptography's ciphertext decrypts back."""
    require_mechanism(vendor, Mechanism.AES_ECB)
    session = vendor.open_session()
    key, value = readable_aes_key(vendor, session, 128, "ecb")
    for n in (16, 32):
        data = message(n)
        theirs = raw(value, modes.ECB(), data)
        assert key.encrypt(data, mechanism=Mechanism.AES_ECB) == theirs, f"AES-ECB of {n} bytes differs"
        assert key.decrypt(theirs, mechanism=Mechanism.AES_ECB) == data, f"AES-ECB decryption of {n} bytes differs"


@pytest.mark.check("encrypt.aes_ctr", layer="module",
                   spec="PKCS#11 v3.0 §5.8 C_Encrypt, §5.10 C_Decrypt; Current Mechanisms: AES with Counter "
                        "(CKM_AES_CTR, CK_AES_CTR_PARAMS); NIST SP 800-38A")
def test_aes_ctr(vendor):
    """CKM_AES_CTR takes CK_AES_CTR_PARAMS: ulCounterBits, "the number of bits in the counter block (cb) that shall
    be incremented", and the initial counter block cb. With a 96-bit nonce and a 32-bit counter starting at 1,
    messages of 1, 16 and 1000 bytes (CTR is a stream mode: any length) encrypt to cryptography's AES-CTR
    ciphertext and decrypt back."""
    require_mechanism(vendor, Mechanism.AES_CTR)
    session = vendor.open_session()
    key, value = readable_aes_key(vendor, session, 128, "ctr")
    block = bytes(range(0xA0, 0xAC)) + b"\0\0\0\1"
    param = bytes(CK_AES_CTR_PARAMS(32, (ctypes.c_ubyte * 16)(*block)))
    wrong = []
    for n in (1, 16, 1000):
        data = message(n)
        theirs = raw(value, modes.CTR(block), data)
        ours = key.encrypt(data, mechanism=Mechanism.AES_CTR, mechanism_param=param)
        back = key.decrypt(theirs, mechanism=Mechanism.AES_CTR, mechanism_param=param)
        if ours != theirs or back != data:
            wrong.append(n)
    assert not wrong, f"CKM_AES_CTR of {wrong}-byte messages differs from AES-CTR (cryptography)"


@pytest.mark.check("encrypt.aes_gcm", layer="module",
                   spec="PKCS#11 v3.0 §5.8 C_Encrypt, §5.10 C_Decrypt; Current Mechanisms: AES-GCM (CKM_AES_GCM, "
                        "CK_GCM_PARAMS); NIST SP 800-38D")
def test_aes_gcm(vendor):
    """CKM_AES_GCM with CK_GCM_PARAMS (96-bit IV, additional authenticated data, ulTagBits 128): C_Encrypt gives
    the ciphertext followed by the tag, as cryptography's AESGCM does, and C_Decrypt of cryptography's
    ciphertext-and-tag gives the message."""
    require_mechanism(vendor, Mechanism.AES_GCM)
    session = vendor.open_session()
    key, value = readable_aes_key(vendor, session, 128, "gcm")
    nonce, aad, data = bytes(range(12)), b"conformance aad 20 b", message(100)
    theirs = AESGCM(value).encrypt(nonce, data, aad)
    gcm = GcmParam(nonce, aad)
    ours = key.encrypt(data, mechanism=Mechanism.AES_GCM, mechanism_param=gcm.param)
    assert ours == theirs, (f"CKM_AES_GCM gave {len(ours)} bytes unlike AES-GCM's (cryptography) "
                            f"{len(theirs)}-byte ciphertext and tag")
    assert key.decrypt(theirs, mechanism=Mechanism.AES_GCM, mechanism_param=gcm.param) == data


@pytest.mark.check("encrypt.aes_gcm_bad_tag", layer="module",
                   spec="PKCS#11 v3.0 §5.10 C_Decrypt, CKR_ENCRYPTED_DATA_INVALID; Current Mechanisms: AES-GCM "
                        "(CKM_AES_GCM); NIST SP 800-38D (authenticated decryption returns FAIL)")
def test_aes_gcm_bad_tag(vendor, observe):
    """GCM's authenticated decryption "returns FAIL" when the tag does not match (SP 800-38D §7.2): C_Decrypt of a
    ciphertext whose last tag byte is changed gives no plaintext. Characterises the error
    (CKR_ENCRYPTED_DATA_INVALID expected)."""
    require_mechanism(vendor, Mechanism.AES_GCM)
    session = vendor.open_session()
    key, value = readable_aes_key(vendor, session, 128, "gcm-bad-tag")
    nonce, aad = bytes(range(12)), b"aad"
    sealed = AESGCM(value).encrypt(nonce, message(40), aad)  # cryptography's: the token's decryption alone is checked
    forged = sealed[:-1] + bytes([sealed[-1] ^ 0x01])
    gcm = GcmParam(nonce, aad)
    got = []
    result = outcome_of(lambda: got.append(key.decrypt(forged, mechanism=Mechanism.AES_GCM, mechanism_param=gcm.param)))
    observe(result)
    assert result != OK, (f"C_Decrypt with CKM_AES_GCM accepted a ciphertext whose tag was changed "
                          f"(gave {len(got[0])} bytes)")


@pytest.mark.check("encrypt.aes_cbc_pad_multi_part", layer="module",
                   spec="PKCS#11 v3.0 §5.8 C_EncryptUpdate, C_EncryptFinal; §5.10 C_DecryptUpdate, C_DecryptFinal")
def test_aes_cbc_pad_multi_part(vendor):
    """C_EncryptUpdate "continues a multiple-part encryption operation" and C_EncryptFinal finishes it: Key.encrypt
    of an iterator of chunks (1, 15, 17, 4096 and 3 bytes: across block boundaries) gives the one-shot ciphertext
    of the whole message, and Key.decrypt of that ciphertext in other chunks gives the message."""
    require_mechanism(vendor, Mechanism.AES_CBC_PAD)
    session = vendor.open_session()
    key = secret_key(vendor, session, KeyType.AES, 128, what="cbc-pad-multi")
    whole = message(1 + 15 + 17 + 4096 + 3)
    cuts = (1, 16, 33, 4129, len(whole))
    chunks = [whole[a:b] for a, b in zip((0,) + cuts, cuts)]
    one_shot = key.encrypt(whole, mechanism=Mechanism.AES_CBC_PAD, mechanism_param=IV)
    parts = b"".join(key.encrypt(iter(chunks), mechanism=Mechanism.AES_CBC_PAD, mechanism_param=IV))
    assert parts == one_shot, (f"C_EncryptUpdate over chunks of {[len(c) for c in chunks]} bytes gave "
                               f"{len(parts)} bytes unlike the one-shot {len(one_shot)}-byte ciphertext")
    cuts = (5, 21, 48, len(one_shot))
    pieces = [one_shot[a:b] for a, b in zip((0,) + cuts, cuts)]
    back = b"".join(key.decrypt(iter(pieces), mechanism=Mechanism.AES_CBC_PAD, mechanism_param=IV))
    assert back == whole, f"C_DecryptUpdate over chunks of {[len(p) for p in pieces]} bytes gave another message"


@pytest.mark.check("encrypt.aes_cbc_pad_bad_padding", layer="module",
                   spec="PKCS#11 v3.0 §5.10 C_Decrypt, CKR_ENCRYPTED_DATA_INVALID; Current Mechanisms: AES-CBC with "
                        "PKCS padding (CKM_AES_CBC_PAD)")
def test_aes_cbc_pad_bad_padding(vendor, observe):
    """A CKM_AES_CBC_PAD ciphertext whose last block decrypts to a final byte of 0 has no valid PKCS #7 padding;
    CKR_ENCRYPTED_DATA_INVALID is "the encrypted input to a decryption operation has been determined to be
    invalid ciphertext" (v3.0 §5.1). C_Decrypt must fail; characterises how (SoftHSM 2.6 answers
    CKR_GENERAL_ERROR here, 2.7 changed that)."""
    require_mechanism(vendor, Mechanism.AES_CBC_PAD)
    session = vendor.open_session()
    key, value = readable_aes_key(vendor, session, 128, "cbc-pad-bad-padding")
    bad = raw(value, modes.CBC(IV), message(31) + b"\0")
    got = []
    result = outcome_of(lambda: got.append(key.decrypt(bad, mechanism=Mechanism.AES_CBC_PAD, mechanism_param=IV)))
    observe(result)
    assert result != OK, (f"C_Decrypt with CKM_AES_CBC_PAD accepted a 32-byte ciphertext whose padding byte is 0 "
                          f"(not PKCS #7) and gave {len(got[0])} bytes")


@pytest.mark.check("encrypt.aes_cbc_pad_wrong_length", layer="module",
                   spec="PKCS#11 v3.0 §5.1 CKR_ENCRYPTED_DATA_LEN_RANGE, §5.10 C_Decrypt; Current Mechanisms: AES-CBC "
                        "with PKCS padding (CKM_AES_CBC_PAD)")
def test_aes_cbc_pad_wrong_length(vendor, observe):
    """A CKM_AES_CBC_PAD ciphertext is a whole number of blocks; CKR_ENCRYPTED_DATA_LEN_RANGE is "the encrypted
    input ... determined to be invalid ciphertext solely on the basis of its length" (v3.0 §5.1). C_Decrypt of 17
    bytes must fail; characterises how (CKR_ENCRYPTED_DATA_LEN_RANGE expected)."""
    require_mechanism(vendor, Mechanism.AES_CBC_PAD)
    session = vendor.open_session()
    key = secret_key(vendor, session, KeyType.AES, 128, what="cbc-pad-wrong-length")
    result = outcome_of(lambda: key.decrypt(message(17), mechanism=Mechanism.AES_CBC_PAD, mechanism_param=IV))
    observe(result)
    assert result != OK, "C_Decrypt with CKM_AES_CBC_PAD accepted a 17-byte ciphertext (not a whole block count)"


def public_numbers(public) -> RSAPublicNumbers:
    return RSAPublicNumbers(int.from_bytes(public[Attribute.PUBLIC_EXPONENT], "big"),
                            int.from_bytes(public[Attribute.MODULUS], "big"))


@pytest.mark.check("encrypt.rsa_oaep_{hash}", layer="module",
                   spec="PKCS#11 v3.0 §5.8 C_Encrypt, §5.10 C_Decrypt; Current Mechanisms: PKCS #1 RSA OAEP "
                        "(CKM_RSA_PKCS_OAEP, CK_RSA_PKCS_OAEP_PARAMS); RFC 8017 §7.1")
@pytest.mark.parametrize("hash", sorted(OAEP))
def test_rsa_oaep(vendor, hash):
    """CKM_RSA_PKCS_OAEP with CK_RSA_PKCS_OAEP_PARAMS (hashAlg and MGF1 of the same hash, no label): the token's
    private key decrypts cryptography's RSAES-OAEP encryption under the token's public key (CKA_MODULUS,
    CKA_PUBLIC_EXPONENT), and the token's own encryption of a message decrypts to it — which, with that
    decryption shown right, makes the token's ciphertext an RSAES-OAEP encryption of the message."""
    mechanism, mgf, algorithm = OAEP[hash]
    require_mechanism(vendor, Mechanism.RSA_PKCS_OAEP)
    session = vendor.open_session()
    public, private = rsa_pair(vendor, session, 2048, what=f"oaep-{hash}")
    param = (mechanism, mgf, None)
    data = message(32)
    theirs = public_numbers(public).public_key().encrypt(
        data, rsa_padding.OAEP(mgf=rsa_padding.MGF1(algorithm()), algorithm=algorithm(), label=None))
    assert private.decrypt(theirs, mechanism=Mechanism.RSA_PKCS_OAEP, mechanism_param=param) == data, (
        f"C_Decrypt of cryptography's RSAES-OAEP ({hash}) ciphertext gave another message")
    ours = public.encrypt(data, mechanism=Mechanism.RSA_PKCS_OAEP, mechanism_param=param)
    assert len(ours) == 256, f"an RSA-2048 OAEP ciphertext of {len(ours)} bytes"
    assert private.decrypt(ours, mechanism=Mechanism.RSA_PKCS_OAEP, mechanism_param=param) == data, (
        f"the token's RSAES-OAEP ({hash}) ciphertext does not decrypt to the message")


@pytest.mark.check("encrypt.rsa_pkcs", layer="module",
                   spec="PKCS#11 v3.0 §5.8 C_Encrypt, §5.10 C_Decrypt; Current Mechanisms: PKCS #1 v1.5 RSA "
                        "(CKM_RSA_PKCS); RFC 8017 §7.2")
def test_rsa_pkcs(vendor):
    """CKM_RSA_PKCS is RSAES-PKCS1-v1_5: the token's private key decrypts cryptography's encryption under the
    token's public key, and the token's own encryption of a message decrypts to it (with that decryption shown
    right, the token's ciphertext is an RSAES-PKCS1-v1_5 encryption of the message)."""
    require_mechanism(vendor, Mechanism.RSA_PKCS)
    session = vendor.open_session()
    public, private = rsa_pair(vendor, session, 2048, what="rsa-pkcs")
    data = message(32)
    theirs = public_numbers(public).public_key().encrypt(data, rsa_padding.PKCS1v15())
    assert private.decrypt(theirs, mechanism=Mechanism.RSA_PKCS) == data, (
        "C_Decrypt of cryptography's RSAES-PKCS1-v1_5 ciphertext gave another message")
    ours = public.encrypt(data, mechanism=Mechanism.RSA_PKCS)
    assert len(ours) == 256, f"an RSA-2048 PKCS #1 v1.5 ciphertext of {len(ours)} bytes"
    assert private.decrypt(ours, mechanism=Mechanism.RSA_PKCS) == data, (
        "the token's RSAES-PKCS1-v1_5 ciphertext does not decrypt to the message")

