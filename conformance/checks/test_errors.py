"""Errors as applications meet them: the return code a module gives for a call the spec says it must refuse, by
name (PKCS#11 v3.0 §5.1 "Function return values"; each function's list of allowed codes in §5.x). Which of the
allowed codes a module picks is implementation-defined, so each check records it (the gate compares it between
runs: an upgrade that changes the code an application's error path catches is seen) and fails only on a success
or on a code the spec does not allow for the call. A code python-pkcs11 has no class for is recorded by its CKR
name (live/probes.outcome_of)."""

from __future__ import annotations

import re

import pytest
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass

from ..labels import label
from ..live.capabilities import require_mechanism
from ..live.keys import secret_key
from ..live.probes import OK, make_data_objects, outcome_of

# v3.0 §5.1.1: any function may return these ("universal" codes); the session codes of §5.1.2 are not expected.
UNIVERSAL = {"CKR_GENERAL_ERROR", "CKR_FUNCTION_FAILED", "CKR_HOST_MEMORY", "CKR_DEVICE_ERROR", "CKR_DEVICE_MEMORY",
             "CKR_DEVICE_REMOVED", "CKR_FUNCTION_CANCELED", "CKR_ARGUMENTS_BAD"}
_CRYPTO_INIT = {"CKR_KEY_FUNCTION_NOT_PERMITTED", "CKR_KEY_HANDLE_INVALID", "CKR_KEY_SIZE_RANGE",
                "CKR_KEY_TYPE_INCONSISTENT", "CKR_MECHANISM_INVALID", "CKR_MECHANISM_PARAM_INVALID",
                "CKR_OPERATION_ACTIVE", "CKR_PIN_EXPIRED", "CKR_USER_NOT_LOGGED_IN"}
_TEMPLATE = {"CKR_ATTRIBUTE_READ_ONLY", "CKR_ATTRIBUTE_TYPE_INVALID", "CKR_ATTRIBUTE_VALUE_INVALID",
             "CKR_CURVE_NOT_SUPPORTED", "CKR_DOMAIN_PARAMS_INVALID", "CKR_PIN_EXPIRED", "CKR_SESSION_READ_ONLY",
             "CKR_TEMPLATE_INCOMPLETE", "CKR_TEMPLATE_INCONSISTENT", "CKR_TOKEN_WRITE_PROTECTED",
             "CKR_USER_NOT_LOGGED_IN"}
# The return values each function lists (v3.0 §5.8.1, §5.13.1, §5.7.1, §5.7.5, §5.18.1), beyond the universal ones.
ALLOWED = {
    "C_EncryptInit": _CRYPTO_INIT,
    "C_SignInit": _CRYPTO_INIT,
    "C_CreateObject": _TEMPLATE,
    "C_GenerateKey": _TEMPLATE | {"CKR_MECHANISM_INVALID", "CKR_MECHANISM_PARAM_INVALID", "CKR_OPERATION_ACTIVE"},
    "C_GetAttributeValue": {"CKR_ATTRIBUTE_SENSITIVE", "CKR_ATTRIBUTE_TYPE_INVALID", "CKR_BUFFER_TOO_SMALL",
                            "CKR_OBJECT_HANDLE_INVALID"},
}


def ckr(result: str) -> str:
    """The CKR a refusal stands for: PKCS11Error(CKR_X) as it says, else python-pkcs11's class name, which spells
    the CKR in CamelCase (KeyTypeInconsistent: CKR_KEY_TYPE_INCONSISTENT)."""
    named = re.fullmatch(r"PKCS11Error\((CKR_\w+)\)", result)
    return named.group(1) if named else "CKR_" + re.sub(r"(?<!^)(?=[A-Z])", "_", result).upper()


def _refused(result: str, function: str, what: str, also: frozenset[str] = frozenset()) -> None:
    """The call must be refused, with a code `function` may return (or `also`: a code the check's docstring
    argues for beyond the function's list)."""
    assert result != OK, f"{what} succeeded; v3.0 requires a refusal"
    allowed = ALLOWED[function] | UNIVERSAL | also
    assert ckr(result) in allowed, (
        f"{what} was refused with {ckr(result)}, which v3.0 does not list for {function}")


@pytest.mark.check("error.mechanism_invalid", layer="module", spec="PKCS#11 v3.0 §5.8.1 C_EncryptInit, CKR_MECHANISM_INVALID")
def test_mechanism_invalid(vendor, observe):
    """An AES key used with a mechanism that is no encryption mechanism at all (CKM_SHA256, a digest): "the
    specified mechanism is not supported by this token, or the function" (CKR_MECHANISM_INVALID), or the key's type
    does not fit it (CKR_KEY_TYPE_INCONSISTENT)."""
    require_mechanism(vendor, Mechanism.SHA256)
    session = vendor.open_session()
    key = secret_key(vendor, session, KeyType.AES, 128, what="error-mechanism")
    result = outcome_of(lambda: key.encrypt(b"\0" * 16, mechanism=Mechanism.SHA256))
    observe(result)
    _refused(result, "C_EncryptInit", "C_EncryptInit(CKM_SHA256)")


@pytest.mark.check("error.key_type_inconsistent", layer="module", spec="PKCS#11 v3.0 §5.8.1 C_EncryptInit, CKR_KEY_TYPE_INCONSISTENT")
def test_key_type_inconsistent(vendor, observe):
    """An AES key given to RSA encryption (CKM_RSA_PKCS): "the specified key is not the correct type of key to use
    with the specified mechanism" (CKR_KEY_TYPE_INCONSISTENT), or another code C_EncryptInit lists."""
    require_mechanism(vendor, Mechanism.RSA_PKCS)
    session = vendor.open_session()
    key = secret_key(vendor, session, KeyType.AES, 128, what="error-key-type")
    result = outcome_of(lambda: key.encrypt(b"data", mechanism=Mechanism.RSA_PKCS))
    observe(result)
    _refused(result, "C_EncryptInit", "C_EncryptInit(CKM_RSA_PKCS, AES key)")


@pytest.mark.check("error.key_function_not_permitted", layer="module",
                   spec="PKCS#11 v3.0 §5.8.1 C_EncryptInit, CKR_KEY_FUNCTION_NOT_PERMITTED; §4.8 CKA_ENCRYPT")
def test_key_function_not_permitted(vendor, observe):
    """A key whose CKA_ENCRYPT was set false used to encrypt: "an attempt has been made to use a key for a
    cryptographic purpose that the key's attributes are not set to allow" (CKR_KEY_FUNCTION_NOT_PERMITTED). The
    key is made able to encrypt and changed after (python-pkcs11 gives a key made with CKA_ENCRYPT false no
    encrypt method, so the module would never be asked)."""
    require_mechanism(vendor, Mechanism.AES_CBC_PAD)
    session = vendor.open_session()
    key = secret_key(vendor, session, KeyType.AES, 128, what="error-not-permitted")
    changed = outcome_of(lambda: key.__setitem__(Attribute.ENCRYPT, False))
    if changed != OK:
        pytest.skip(f"the token refuses to set CKA_ENCRYPT false on a key ({changed}), so no key may not encrypt")
    result = outcome_of(lambda: key.encrypt(b"data", mechanism=Mechanism.AES_CBC_PAD, mechanism_param=bytes(16)))
    observe(result)
    _refused(result, "C_EncryptInit", "C_EncryptInit with a key whose CKA_ENCRYPT is false")


@pytest.mark.check("error.object_handle_invalid", layer="module", spec="PKCS#11 v3.0 §5.7.5 C_GetAttributeValue, CKR_OBJECT_HANDLE_INVALID")
def test_object_handle_invalid(vendor, observe):
    """Reading an attribute of an object that was destroyed: "the specified object handle is not valid"
    (CKR_OBJECT_HANDLE_INVALID)."""
    session = vendor.open_session()
    obj = make_data_objects(session, 1, tag="error-destroyed")[0]
    obj.destroy()
    result = outcome_of(lambda: obj[Attribute.LABEL])
    observe(result)
    _refused(result, "C_GetAttributeValue", "C_GetAttributeValue on a destroyed object")


@pytest.mark.check("error.attribute_type_invalid", layer="module", spec="PKCS#11 v3.0 §5.7.5 C_GetAttributeValue, CKR_ATTRIBUTE_TYPE_INVALID")
def test_attribute_type_invalid(vendor, observe):
    """Reading CKA_MODULUS of a data object, which has none: "the specified attribute is not a valid attribute for
    the object" — §5.7.5: ulValueLen is CK_UNAVAILABLE_INFORMATION and CKR_ATTRIBUTE_TYPE_INVALID is returned."""
    session = vendor.open_session()
    obj = make_data_objects(session, 1, tag="error-attribute")[0]
    result = outcome_of(lambda: obj[Attribute.MODULUS])
    observe(result)
    _refused(result, "C_GetAttributeValue", "C_GetAttributeValue(CKA_MODULUS) of a data object")


@pytest.mark.check("error.template_incomplete", layer="module", spec="PKCS#11 v3.0 §5.7.1 C_CreateObject, CKR_TEMPLATE_INCOMPLETE; §4.1.3")
def test_template_incomplete(vendor, observe):
    """A secret key created without its value (CKA_VALUE is required for C_CreateObject of a CKK_AES key, §4.1.3
    table 10 note 1): "the template specified for creating an object is incomplete" (CKR_TEMPLATE_INCOMPLETE)."""
    session = vendor.open_session()
    result = outcome_of(lambda: session.create_object({
        Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.KEY_TYPE: KeyType.AES, Attribute.TOKEN: False,
        Attribute.LABEL: label("error-incomplete")}))
    observe(result)
    _refused(result, "C_CreateObject", "C_CreateObject of an AES key without CKA_VALUE")


@pytest.mark.check("error.key_size_range", layer="module", spec="PKCS#11 v3.0 §5.18.1 C_GenerateKey, §5.1.6 CKR_KEY_SIZE_RANGE; §6.8 AES")
def test_key_size_range(vendor, observe):
    """An AES key of 17 bytes: AES keys are 16, 24 or 32 bytes (v3.0 §6.8.1), so C_GenerateKey with CKA_VALUE_LEN
    17 is refused — CKR_KEY_SIZE_RANGE ("the key's size is outside the range of key sizes that it can handle"),
    or the template's value is refused (C_GenerateKey's own list has no CKR_KEY_SIZE_RANGE, but §5.1.6 defines
    it for exactly this: accepted too)."""
    session = vendor.open_session()
    secret_key(vendor, session, KeyType.AES, 128, what="error-key-size")  # a token that makes no AES key skips
    result = outcome_of(lambda: session.generate_key(KeyType.AES, 17 * 8, store=False,
                                                     label=label("error-key-size")))
    observe(result)
    _refused(result, "C_GenerateKey", "C_GenerateKey(CKM_AES_KEY_GEN, CKA_VALUE_LEN 17)",
             also=frozenset({"CKR_KEY_SIZE_RANGE"}))
