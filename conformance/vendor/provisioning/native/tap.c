/* The conformance tap: a pass-through PKCS#11 "module" between the binding and the module under test, so the
 * harness sees the same module instance the binding uses and knows what the module is doing.
 *
 * - One instance. Some modules (p11-kit-proxy) hand out a new, separately initialised instance with its own
 *   session handles on every C_GetFunctionList call, so the harness's ground truth (C_GetSessionInfo & co. through
 *   ctypes) could not see python-pkcs11's sessions. The tap asks the module below (CONFORMANCE_TAP_MODULE) for its
 *   function list once; conformance_tap_functions() returns that list to ctypes (ground truth, raw replays: they
 *   bypass the watch below).
 * - Evidence. Every function the binding is given is a thin wrapper that notes, per OS thread, which call is in
 *   the module right now and since when, counts the thread's calls, and logs each return (function, first argument,
 *   CK_RV) in a ring. The executor reads this to tell a call that is slow in the module (a network HSM) from one
 *   that never reached it (waiting on a lock above the module), and to say what the module returned.
 * - Guard. When CONFORMANCE_TAP_GUARD is set (a token that is not disposable), C_InitToken, C_InitPIN and C_SetPIN
 *   return CKR_ACTION_PROHIBITED without reaching the module: whatever a check does, the harness cannot
 *   re-initialise a real token or change its PINs.
 *
 * The wrappers take each function's own number of arguments, every one a CK_ULONG-sized integer or pointer (true of
 * all of PKCS#11 v2.40 on LP64 platforms), so they forward exactly what they were given. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

typedef unsigned long U;
typedef U CK_RV;
typedef CK_RV (*get_function_list_fn)(void **);

#define CKR_OK 0UL
#define CKR_GENERAL_ERROR 5UL
#define CKR_ARGUMENTS_BAD 7UL
#define CKR_ACTION_PROHIBITED 0x1BUL

/* CK_FUNCTION_LIST (v2.40): a CK_VERSION, then 68 function pointers in pkcs11f.h order. */
#define FUNCTIONS 68
#define C_GETFUNCTIONLIST 3
#define C_OPENSESSION 12
#define C_LOGIN 18
#define C_FINDOBJECTS 27
#define C_INITTOKEN 9
#define C_INITPIN 10
#define C_SETPIN 11
struct function_list {
    unsigned char major, minor;
    void *fn[FUNCTIONS];
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct function_list *below = NULL; /* the module's list (ground truth) */
static struct function_list watched;       /* what the binding gets: every function wrapped */
static int guard = 0;

/* --- evidence ------------------------------------------------------------------------------------------------- */

#define THREADS 1024
struct thread_state {
    long tid;         /* 0: free */
    volatile int fn;  /* the function this thread is inside, -1 when none */
    volatile U calls; /* calls this thread has started */
    volatile double since;
};
static struct thread_state threads[THREADS];
static __thread struct thread_state *mine = NULL;
static pthread_key_t exiting;
static pthread_once_t exiting_once = PTHREAD_ONCE_INIT;

/* A thread that exits gives its slot back (threads come and go: stress rounds start new ones). */
static void release_slot(void *slot)
{
    __atomic_store_n(&((struct thread_state *)slot)->tid, 0L, __ATOMIC_SEQ_CST);
}
static void make_key(void) { (void)pthread_key_create(&exiting, release_slot); }

#define RING 65536
struct call_record {
    U seq; /* 1-based; 0: empty */
    long tid;
    long fn;
    U arg; /* the first argument: a slot id or a session handle */
    U out; /* C_OpenSession: the new session's handle; C_FindObjects: the objects returned; C_Login: the user type */
    U rv;
    double started; /* CLOCK_MONOTONIC seconds when the call entered: with `seconds`, whether two calls overlapped */
    double seconds;
};
static struct call_record ring[RING];
static U sequence = 0;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static struct thread_state *me(void)
{
    if (mine == NULL) {
        long tid = (long)syscall(SYS_gettid);
        pthread_once(&exiting_once, make_key);
        pthread_mutex_lock(&lock);
        for (int i = 0; i < THREADS && mine == NULL; i++) {
            if (threads[i].tid == 0 || threads[i].tid == tid) {
                threads[i].fn = -1;
                threads[i].calls = 0;
                __atomic_store_n(&threads[i].tid, tid, __ATOMIC_SEQ_CST);
                mine = &threads[i];
            }
        }
        pthread_mutex_unlock(&lock);
        if (mine != NULL)
            (void)pthread_setspecific(exiting, mine);
    }
    return mine; /* NULL only past THREADS threads: then this thread is not watched */
}

static double enter(int fn)
{
    struct thread_state *t = me();
    double started = now();
    if (t != NULL) {
        t->since = started;
        __atomic_add_fetch(&t->calls, 1, __ATOMIC_SEQ_CST);
        __atomic_store_n(&t->fn, fn, __ATOMIC_SEQ_CST);
    }
    return started;
}

static void record(long tid, int fn, double started, double seconds, U arg, U out, CK_RV rv)
{
    pthread_mutex_lock(&lock);
    U seq = ++sequence;
    struct call_record *r = &ring[seq % RING];
    r->tid = tid;
    r->fn = fn;
    r->arg = arg;
    r->out = out;
    r->rv = rv;
    r->started = started;
    r->seconds = seconds;
    r->seq = seq;
    pthread_mutex_unlock(&lock);
}

static CK_RV leave(int fn, double started, U arg, U out, CK_RV rv)
{
    struct thread_state *t = mine;
    if (t != NULL)
        __atomic_store_n(&t->fn, -1, __ATOMIC_SEQ_CST);
    record(t ? t->tid : 0, fn, started, now() - started, arg, out, rv);
    return rv;
}

/* A call the harness made itself on the list below (ground truth), logged so the log holds every call the module
 * answered, in order. */
void conformance_tap_note(long fn, U arg, U out, U rv)
{
    record((long)syscall(SYS_gettid), (int)fn, now(), 0.0, arg, out, rv);
}

/* The function `tid` is inside (-1: none; -2: the tap has never seen that thread); *seconds: for how long;
 * *calls: how many calls the thread has started. */
int conformance_tap_inside(long tid, double *seconds, U *calls)
{
    for (int i = 0; i < THREADS; i++) {
        if (__atomic_load_n(&threads[i].tid, __ATOMIC_SEQ_CST) == tid) {
            int fn = __atomic_load_n(&threads[i].fn, __ATOMIC_SEQ_CST);
            if (seconds)
                *seconds = fn >= 0 ? now() - threads[i].since : 0.0;
            if (calls)
                *calls = __atomic_load_n(&threads[i].calls, __ATOMIC_SEQ_CST);
            return fn;
        }
    }
    if (seconds)
        *seconds = 0.0;
    if (calls)
        *calls = 0;
    return -2;
}

/* Copy the logged returns after sequence number `after` (oldest first, at most `max`); returns how many. The ring
 * keeps the last RING returns: a gap in the sequence numbers says some were overwritten. */
U conformance_tap_log(U after, struct call_record *out, U max)
{
    U n = 0;
    pthread_mutex_lock(&lock);
    U first = sequence > RING ? sequence - RING + 1 : 1;
    if (after + 1 > first)
        first = after + 1;
    for (U seq = first; seq <= sequence && n < max; seq++)
        out[n++] = ring[seq % RING];
    pthread_mutex_unlock(&lock);
    return n;
}

U conformance_tap_sequence(void)
{
    return __atomic_load_n(&sequence, __ATOMIC_SEQ_CST);
}

/* --- the wrappers ------------------------------------------------------------------------------------------------ */

static CK_RV refuse(const char *name)
{
    fprintf(stderr, "conformance tap: %s refused: the token is not disposable\n", name);
    return CKR_ACTION_PROHIBITED;
}

#define P1 U a
#define P2 P1, U b
#define P3 P2, U c
#define P4 P3, U d
#define P5 P4, U e
#define P6 P5, U f
#define P8 P6, U g, U h
#define A1 a
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
#define WRAP(i, name, n)                                                                                           \
    static CK_RV w_##name(P##n)                                                                                    \
    {                                                                                                              \
        double started = enter(i);                                                                                 \
        CK_RV rv = ((CK_RV(*)(T##n))below->fn[i])(A##n);                                                           \
        return leave(i, started, a, 0, rv);                                                                        \
    }
#define GUARDED(i, name, n)                                                                                        \
    static CK_RV w_##name(P##n)                                                                                    \
    {                                                                                                              \
        double started = enter(i);                                                                                 \
        CK_RV rv = guard ? refuse(#name) : ((CK_RV(*)(T##n))below->fn[i])(A##n);                                   \
        return leave(i, started, a, 0, rv);                                                                        \
    }

/* The three whose log entry carries an output (or a second input) the harness's raw judge needs. */
static CK_RV w_C_OpenSession(P5)
{
    double started = enter(C_OPENSESSION);
    CK_RV rv = ((CK_RV(*)(T5))below->fn[C_OPENSESSION])(A5);
    return leave(C_OPENSESSION, started, a, rv == CKR_OK && e ? *(U *)e : 0, rv);
}
static CK_RV w_C_FindObjects(P4)
{
    double started = enter(C_FINDOBJECTS);
    CK_RV rv = ((CK_RV(*)(T4))below->fn[C_FINDOBJECTS])(A4);
    return leave(C_FINDOBJECTS, started, a, rv == CKR_OK && d ? *(U *)d : 0, rv);
}
static CK_RV w_C_Login(P4)
{
    double started = enter(C_LOGIN);
    return leave(C_LOGIN, started, a, b, ((CK_RV(*)(T4))below->fn[C_LOGIN])(A4));
}

/* Every v2.40 function but C_GetFunctionList and the three above, with its index and its number of arguments. */
#define FUNCTION_TABLE(X, G)                                                                                       \
    X(0, C_Initialize, 1) X(1, C_Finalize, 1) X(2, C_GetInfo, 1) X(4, C_GetSlotList, 3) X(5, C_GetSlotInfo, 2)  \
    X(6, C_GetTokenInfo, 2) X(7, C_GetMechanismList, 3) X(8, C_GetMechanismInfo, 3) G(9, C_InitToken, 4)         \
    G(10, C_InitPIN, 3) G(11, C_SetPIN, 5) X(13, C_CloseSession, 1) X(14, C_CloseAllSessions, 1)                 \
    X(15, C_GetSessionInfo, 2) X(16, C_GetOperationState, 3) X(17, C_SetOperationState, 5)                      \
    X(19, C_Logout, 1) X(20, C_CreateObject, 4) X(21, C_CopyObject, 5) X(22, C_DestroyObject, 2)                \
    X(23, C_GetObjectSize, 3) X(24, C_GetAttributeValue, 4) X(25, C_SetAttributeValue, 4)                        \
    X(26, C_FindObjectsInit, 3) X(28, C_FindObjectsFinal, 1) X(29, C_EncryptInit, 3)                             \
    X(30, C_Encrypt, 5) X(31, C_EncryptUpdate, 5) X(32, C_EncryptFinal, 3) X(33, C_DecryptInit, 3)               \
    X(34, C_Decrypt, 5) X(35, C_DecryptUpdate, 5) X(36, C_DecryptFinal, 3) X(37, C_DigestInit, 2)                \
    X(38, C_Digest, 5) X(39, C_DigestUpdate, 3) X(40, C_DigestKey, 2) X(41, C_DigestFinal, 3)                    \
    X(42, C_SignInit, 3) X(43, C_Sign, 5) X(44, C_SignUpdate, 3) X(45, C_SignFinal, 3)                           \
    X(46, C_SignRecoverInit, 3) X(47, C_SignRecover, 5) X(48, C_VerifyInit, 3) X(49, C_Verify, 5)                \
    X(50, C_VerifyUpdate, 3) X(51, C_VerifyFinal, 3) X(52, C_VerifyRecoverInit, 3) X(53, C_VerifyRecover, 5)     \
    X(54, C_DigestEncryptUpdate, 5) X(55, C_DecryptDigestUpdate, 5) X(56, C_SignEncryptUpdate, 5)                \
    X(57, C_DecryptVerifyUpdate, 5) X(58, C_GenerateKey, 5) X(59, C_GenerateKeyPair, 8) X(60, C_WrapKey, 6)      \
    X(61, C_UnwrapKey, 8) X(62, C_DeriveKey, 6) X(63, C_SeedRandom, 3) X(64, C_GenerateRandom, 3)                \
    X(65, C_GetFunctionStatus, 1) X(66, C_CancelFunction, 1) X(67, C_WaitForSlotEvent, 3)

FUNCTION_TABLE(WRAP, GUARDED)

CK_RV C_GetFunctionList(void **out);

static void install(void)
{
    memcpy(&watched, below, sizeof watched);
#define SET(i, name, n) watched.fn[i] = below->fn[i] ? (void *)w_##name : NULL;
    FUNCTION_TABLE(SET, SET)
#undef SET
    watched.fn[C_OPENSESSION] = (void *)w_C_OpenSession;
    watched.fn[C_FINDOBJECTS] = below->fn[C_FINDOBJECTS] ? (void *)w_C_FindObjects : NULL;
    watched.fn[C_LOGIN] = below->fn[C_LOGIN] ? (void *)w_C_Login : NULL;
    watched.fn[C_GETFUNCTIONLIST] = (void *)C_GetFunctionList;
}

CK_RV C_GetFunctionList(void **out)
{
    CK_RV rv = CKR_OK;
    if (out == NULL)
        return CKR_ARGUMENTS_BAD;
    pthread_mutex_lock(&lock);
    if (below == NULL) {
        const char *path = getenv("CONFORMANCE_TAP_MODULE");
        void *handle = path ? dlopen(path, RTLD_NOW | RTLD_LOCAL) : NULL;
        get_function_list_fn get = handle ? (get_function_list_fn)dlsym(handle, "C_GetFunctionList") : NULL;
        void *list = NULL;
        if (get == NULL) {
            fprintf(stderr, "conformance tap: cannot load CONFORMANCE_TAP_MODULE=%s: %s\n",
                    path ? path : "(unset)", dlerror());
            rv = CKR_GENERAL_ERROR;
        } else if ((rv = get(&list)) == CKR_OK && list != NULL) {
            const char *g = getenv("CONFORMANCE_TAP_GUARD");
            guard = g != NULL && *g != '\0';
            below = (struct function_list *)list;
            install();
        } else if (rv == CKR_OK) {
            rv = CKR_GENERAL_ERROR;
        }
    }
    if (rv == CKR_OK)
        *out = &watched;
    pthread_mutex_unlock(&lock);
    return rv;
}

void *conformance_tap_functions(void)
{
    return below;
}
