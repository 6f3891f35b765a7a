/* breaker: a PKCS#11 module over a real one (CONFORMANCE_BREAK_MODULE) that breaks one rule of the spec at a time,
 * or shows one variation the spec allows, chosen by CONFORMANCE_BREAK. The harness's own tests load it as "the
 * module" (through the tap, like any module) and check that every broken rule is caught and every failure it
 * causes is blamed on the module, and that every allowed variation changes nothing (tests/test_blame.py).
 *
 * Unlike the fault shim it exports no conformance_tap_functions: the harness's ground truth sees this module's
 * answers, as it would a real module's. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef unsigned long U;
typedef U CK_RV;

#define CKR_OK 0UL
#define CKR_GENERAL_ERROR 5UL
#define CKR_ARGUMENTS_BAD 7UL
#define CKR_DEVICE_ERROR 0x30UL
#define CKR_OPERATION_ACTIVE 0x90UL
#define CKR_OPERATION_NOT_INITIALIZED 0x91UL
#define CKR_SESSION_CLOSED 0xB0UL
#define CKR_SESSION_HANDLE_INVALID 0xB3UL
#define CKR_USER_ALREADY_LOGGED_IN 0x100UL
#define CKA_TOKEN 1UL

#define FUNCTIONS 68
struct function_list {
    unsigned char major, minor;
    void *fn[FUNCTIONS];
};
struct session_info { U slot, state, flags, device_error; };

static struct function_list *real;
static struct function_list broken;
static const char *rule = "";
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static int is(const char *name) { return strcmp(rule, name) == 0; }

/* Per session handle: a search is active; how many C_FindObjects it had. */
#define TRACKED 4096
static unsigned char searching[TRACKED];
static unsigned fetches[TRACKED];
static U login_handle = 0; /* the session C_Login succeeded on (0: logged out) */
static char pin[256];      /* login_survives_close_all: the PIN, to log in again (test code, never printed) */
static U pin_len = 0, relogin = 0;

/* handle_reuse (allowed, v3.0 §5.6.1 says nothing against it): the handles this module hands out are the lowest
 * free ones, so a closed session's handle comes back with the next C_OpenSession (as OpenCryptoki does). */
#define NO_SESSION 0xFFFFFFF0UL /* an inner handle the module below never gives: its calls fail as they should */
static U outer_to_inner[TRACKED];
static unsigned char outer_used[TRACKED];

static U inner(U h)
{
    if (!is("handle_reuse"))
        return h;
    return h > 0 && h < TRACKED && outer_used[h] ? outer_to_inner[h] : NO_SESSION;
}

static U outer_for(U in)
{
    if (!is("handle_reuse"))
        return in;
    for (U h = 1; h < TRACKED; h++)
        if (!outer_used[h]) {
            outer_used[h] = 1;
            outer_to_inner[h] = in;
            return h;
        }
    return in;
}

static void forget(U h)
{
    if (is("handle_reuse") && h < TRACKED)
        outer_used[h] = 0;
}

static int active(U h) { return searching[h % TRACKED]; }
static void set_active(U h, int on) { searching[h % TRACKED] = (unsigned char)on; fetches[h % TRACKED] = 0; }
static int any_other_active(U h)
{
    for (U i = 0; i < TRACKED; i++)
        if (searching[i] && i != h % TRACKED)
            return 1;
    return 0;
}

/* closed_session_code: a call on a handle that is no session says CKR_DEVICE_ERROR instead of the right code. */
static CK_RV answer(CK_RV rv)
{
    if (is("closed_session_code") && (rv == CKR_SESSION_HANDLE_INVALID || rv == CKR_SESSION_CLOSED))
        return CKR_DEVICE_ERROR;
    return rv;
}

static void latency(void)
{
    if (is("latency")) {
        struct timespec ts = {0, 1000 * 1000}; /* 1 ms before every call: allowed, a module a little away */
        nanosleep(&ts, NULL);
    }
}

#define CALL(i, T, ...) ((CK_RV(*) T) real->fn[i])(__VA_ARGS__)

static CK_RV b_OpenSession(U slot, U flags, U app, U notify, U *out)
{
    latency();
    CK_RV rv = CALL(12, (U, U, U, U, U *), slot, flags, app, notify, out);
    if (rv == CKR_OK && out) {
        *out = outer_for(*out);
        set_active(*out, 0);
        if (relogin && pin_len) { /* login_survives_close_all: the application is still logged in */
            CALL(18, (U, U, char *, U), inner(*out), 1UL, pin, pin_len);
            login_handle = *out;
            relogin = 0;
        }
    }
    return rv;
}

static CK_RV b_CloseSession(U h)
{
    latency();
    if (is("close_keeps_session"))
        return CKR_OK; /* says closed, stays open */
    CK_RV rv = CALL(13, (U), inner(h));
    if (rv == CKR_OK) {
        forget(h);
        set_active(h, 0);
        if (h == login_handle)
            login_handle = 0;
    }
    return answer(rv);
}

static CK_RV b_CloseAllSessions(U slot)
{
    latency();
    CK_RV rv = CALL(14, (U), slot);
    if (rv == CKR_OK) {
        memset(searching, 0, sizeof searching);
        memset(outer_used, 0, sizeof outer_used);
        relogin = is("login_survives_close_all") && login_handle != 0;
        login_handle = 0;
    }
    return rv;
}

static CK_RV b_GetSessionInfo(U h, struct session_info *info)
{
    latency();
    CK_RV rv = CALL(15, (U, struct session_info *), inner(h), info);
    /* login_not_shared: only the session that logged in says so; the others claim public sessions. */
    if (rv == CKR_OK && info && is("login_not_shared") && h != login_handle && (info->state == 1 || info->state == 3))
        info->state -= 1;
    return answer(rv);
}

static CK_RV b_Login(U h, U user, char *p, U len)
{
    latency();
    CK_RV rv = CALL(18, (U, U, char *, U), inner(h), user, p, len);
    if (rv == CKR_OK) {
        login_handle = h;
        if (p && len < sizeof pin) {
            memcpy(pin, p, len);
            pin_len = len;
        }
    }
    if (rv == CKR_USER_ALREADY_LOGGED_IN && is("second_login_ok"))
        return CKR_OK;
    return answer(rv);
}

static CK_RV b_Logout(U h)
{
    latency();
    if (is("logout_keeps_login"))
        return CKR_OK; /* says logged out, stays logged in */
    CK_RV rv = CALL(19, (U), inner(h));
    if (rv == CKR_OK)
        login_handle = 0;
    return answer(rv);
}

static CK_RV b_FindObjectsInit(U h, U tmpl, U count)
{
    latency();
    if (is("search_blocks_other_sessions") && !active(h) && any_other_active(h))
        return CKR_OPERATION_ACTIVE;
    if (is("search_restarts") && active(h))
        CALL(28, (U), inner(h)); /* ends the running search and starts anew, instead of refusing */
    CK_RV rv = CALL(26, (U, U, U), inner(h), tmpl, count);
    if (rv == CKR_OK)
        set_active(h, 1);
    return answer(rv);
}

static CK_RV b_FindObjects(U h, U *objects, U max, U *count)
{
    latency();
    if (is("fetch_forgets_search") && active(h) && fetches[h % TRACKED]++ >= 1)
        return CKR_OPERATION_NOT_INITIALIZED; /* the second fetch of a search: the module lost it */
    if (is("fewer_objects") && max > 1)
        max = 1; /* allowed: fewer objects than asked, one at a time */
    return answer(CALL(27, (U, U *, U, U *), inner(h), objects, max, count));
}

static CK_RV b_FindObjectsFinal(U h)
{
    latency();
    if (is("final_keeps_search") && active(h))
        return CKR_OK; /* says ended, the search stays active */
    CK_RV rv = CALL(28, (U), inner(h));
    if (rv == CKR_OK)
        set_active(h, 0);
    return answer(rv);
}

static CK_RV b_GenerateRandom(U h, U buf, U len)
{
    static U calls = 0;
    latency();
    if (is("random_general_error") && ++calls % 3 == 0)
        return CKR_GENERAL_ERROR;
    if (is("search_blocks_one_shot") && active(h))
        return CKR_OPERATION_ACTIVE;
    return answer(CALL(64, (U, U, U), inner(h), buf, len));
}

static CK_RV b_DigestInit(U h, U mechanism)
{
    latency();
    if (is("search_blocks_one_shot") && active(h))
        return CKR_OPERATION_ACTIVE;
    return answer(CALL(37, (U, U), inner(h), mechanism));
}

/* Every other function: forwarded, after the rule's latency, with the rule's return-code change and handles. */
#define P1 U a
#define P2 P1, U b
#define P3 P2, U c
#define P4 P3, U d
#define P5 P4, U e
#define P6 P5, U f
#define P8 P6, U g, U h
#define A1 inner(a) /* every function forwarded below takes a session handle first */
#define A2 A1, b
#define A3 A2, c
#define A4 A3, d
#define A5 A4, e
#define A6 A5, f
#define A8 A6, g, h
#define T1 U
#define T2 T1, U
#define T3 T2, U
#define T4 T3, U
#define T5 T4, U
#define T6 T5, U
#define T8 T6, U, U
#define FORWARD(i, name, n)                                                                                        \
    static CK_RV f_##name(P##n) { latency(); return answer(((CK_RV(*)(T##n))real->fn[i])(A##n)); }
#define TABLE(X)                                                                                                   \
    X(16, C_GetOperationState, 3) X(17, C_SetOperationState, 5) X(20, C_CreateObject, 4) X(21, C_CopyObject, 5)    \
    X(22, C_DestroyObject, 2) X(23, C_GetObjectSize, 3) X(24, C_GetAttributeValue, 4)                              \
    X(25, C_SetAttributeValue, 4) X(29, C_EncryptInit, 3) X(30, C_Encrypt, 5) X(31, C_EncryptUpdate, 5)           \
    X(32, C_EncryptFinal, 3) X(33, C_DecryptInit, 3) X(34, C_Decrypt, 5) X(35, C_DecryptUpdate, 5)                \
    X(36, C_DecryptFinal, 3) X(38, C_Digest, 5) X(39, C_DigestUpdate, 3) X(40, C_DigestKey, 2)                     \
    X(41, C_DigestFinal, 3) X(42, C_SignInit, 3) X(43, C_Sign, 5) X(44, C_SignUpdate, 3) X(45, C_SignFinal, 3)     \
    X(48, C_VerifyInit, 3) X(49, C_Verify, 5) X(50, C_VerifyUpdate, 3) X(51, C_VerifyFinal, 3)                    \
    X(58, C_GenerateKey, 5) X(59, C_GenerateKeyPair, 8) X(60, C_WrapKey, 6) X(61, C_UnwrapKey, 8)                 \
    X(62, C_DeriveKey, 6) X(63, C_SeedRandom, 3)
TABLE(FORWARD)

CK_RV C_GetFunctionList(struct function_list **out)
{
    if (out == NULL)
        return CKR_ARGUMENTS_BAD;
    pthread_mutex_lock(&lock);
    if (real == NULL) {
        const char *path = getenv("CONFORMANCE_BREAK_MODULE");
        void *handle = path ? dlopen(path, RTLD_NOW | RTLD_LOCAL) : NULL;
        CK_RV (*get)(struct function_list **) =
            handle ? (CK_RV(*)(struct function_list **))dlsym(handle, "C_GetFunctionList") : NULL;
        if (get == NULL || get(&real) != CKR_OK || real == NULL) {
            fprintf(stderr, "breaker: cannot load CONFORMANCE_BREAK_MODULE=%s\n", path ? path : "(unset)");
            real = NULL;
            pthread_mutex_unlock(&lock);
            return CKR_GENERAL_ERROR;
        }
        rule = getenv("CONFORMANCE_BREAK") ? getenv("CONFORMANCE_BREAK") : "";
        broken = *real;
        broken.fn[3] = (void *)C_GetFunctionList;
        broken.fn[12] = (void *)b_OpenSession;
        broken.fn[13] = (void *)b_CloseSession;
        broken.fn[14] = (void *)b_CloseAllSessions;
        broken.fn[15] = (void *)b_GetSessionInfo;
        broken.fn[18] = (void *)b_Login;
        broken.fn[19] = (void *)b_Logout;
        broken.fn[26] = (void *)b_FindObjectsInit;
        broken.fn[27] = (void *)b_FindObjects;
        broken.fn[28] = (void *)b_FindObjectsFinal;
        broken.fn[37] = (void *)b_DigestInit;
        broken.fn[64] = (void *)b_GenerateRandom;
#define SET(i, name, n) broken.fn[i] = (void *)f_##name;
        TABLE(SET)
#undef SET
    }
    pthread_mutex_unlock(&lock);
    *out = &broken;
    return CKR_OK;
}
