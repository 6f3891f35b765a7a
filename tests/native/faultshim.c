/* faultshim: a PKCS#11 module that forwards to a real one and injects faults on command.
 *
 * The harness's own tests load it in place of SoftHSM, so crash / hang / error isolation is proven on a real
 * dlopen'ed library rather than on Python code that merely pretends to crash.
 *
 *   CONFORMANCE_FAULT_MODULE  the real module (dlopen'ed, its C_GetFunctionList called once).
 *   CONFORMANCE_FAULTS        fault spec, read once.
 *   CONFORMANCE_FAULT_FILE    a file holding more of the spec, re-read on every intercepted call, so a test can
 *                             arm or disarm faults in the middle of a run; when set, every function is intercepted.
 *
 * Spec: entries FUNCTION=ACTION[@N] separated by ';' or newlines; ACTION is segv | abort | hang | delay:SECONDS |
 * rv:HEXCODE | exit:CODE; @N fires only from the N-th call of FUNCTION (in this process, 1-based) on; a trailing
 * `!` (fault file only) makes the entry one-shot: the file is emptied as it fires, so the processes the harness
 * starts afterwards (a restarted child, the integrity check) meet a sound module again. FUNCTION `*`
 * is every function that can be wrapped (`*=delay:0.02`: a module 20 ms away). The last entry that applies wins
 * (file entries come after the environment's), so `*=delay:0.02;C_Login=delay:1.5` slows logins further.
 *
 * Each wrapper passes six integer arguments on to the real function whatever its arity: PKCS#11 arguments are
 * all integers or pointers, and on x86-64 / aarch64 the first six travel in registers the callee ignores if it
 * takes fewer. Functions with more arguments (C_GenerateKeyPair, C_UnwrapKey) cannot be wrapped this way and
 * are refused in the spec. conformance_tap_functions() returns the real list: the harness's ground truth
 * (conformance/groundtruth.py) then bypasses the faults. */
#if !defined(__x86_64__) && !defined(__aarch64__)
#error "faultshim forwards arguments in registers: x86-64 or aarch64 only"
#endif
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef unsigned long U;
typedef U CK_RV;
typedef CK_RV (*fn6)(U, U, U, U, U, U);

#define NFUNCS 68
#define CKR_OK 0UL
#define CKR_GENERAL_ERROR 5UL
#define CKR_ARGUMENTS_BAD 7UL

/* CK_FUNCTION_LIST of v2.40: the version, then the functions in pkcs11f.h order. */
struct function_list {
    unsigned char major, minor;
    void *fn[NFUNCS];
};

static const struct { const char *name; int nargs; } FUNCS[NFUNCS] = {
    {"C_Initialize", 1}, {"C_Finalize", 1}, {"C_GetInfo", 1}, {"C_GetFunctionList", 1},
    {"C_GetSlotList", 3}, {"C_GetSlotInfo", 2}, {"C_GetTokenInfo", 2}, {"C_GetMechanismList", 3},
    {"C_GetMechanismInfo", 3}, {"C_InitToken", 4}, {"C_InitPIN", 3}, {"C_SetPIN", 5},
    {"C_OpenSession", 5}, {"C_CloseSession", 1}, {"C_CloseAllSessions", 1}, {"C_GetSessionInfo", 2},
    {"C_GetOperationState", 3}, {"C_SetOperationState", 5}, {"C_Login", 4}, {"C_Logout", 1},
    {"C_CreateObject", 4}, {"C_CopyObject", 5}, {"C_DestroyObject", 2}, {"C_GetObjectSize", 3},
    {"C_GetAttributeValue", 4}, {"C_SetAttributeValue", 4}, {"C_FindObjectsInit", 3}, {"C_FindObjects", 4},
    {"C_FindObjectsFinal", 1}, {"C_EncryptInit", 3}, {"C_Encrypt", 5}, {"C_EncryptUpdate", 5},
    {"C_EncryptFinal", 3}, {"C_DecryptInit", 3}, {"C_Decrypt", 5}, {"C_DecryptUpdate", 5},
    {"C_DecryptFinal", 3}, {"C_DigestInit", 2}, {"C_Digest", 5}, {"C_DigestUpdate", 3},
    {"C_DigestKey", 2}, {"C_DigestFinal", 3}, {"C_SignInit", 3}, {"C_Sign", 5},
    {"C_SignUpdate", 3}, {"C_SignFinal", 3}, {"C_SignRecoverInit", 3}, {"C_SignRecover", 5},
    {"C_VerifyInit", 3}, {"C_Verify", 5}, {"C_VerifyUpdate", 3}, {"C_VerifyFinal", 3},
    {"C_VerifyRecoverInit", 3}, {"C_VerifyRecover", 5}, {"C_DigestEncryptUpdate", 5},
    {"C_DecryptDigestUpdate", 5}, {"C_SignEncryptUpdate", 5}, {"C_DecryptVerifyUpdate", 5},
    {"C_GenerateKey", 5}, {"C_GenerateKeyPair", 8}, {"C_WrapKey", 6}, {"C_UnwrapKey", 8},
    {"C_DeriveKey", 6}, {"C_SeedRandom", 3}, {"C_GenerateRandom", 3}, {"C_GetFunctionStatus", 1},
    {"C_CancelFunction", 1}, {"C_WaitForSlotEvent", 3},
};
#define SLOT_GET_FUNCTION_LIST 3
#define SLOT_ALL (-2) /* the entry `*=...` */

enum action { NONE, SEGV, ABORT, HANG, DELAY, RV, EXIT };
struct fault { enum action action; double seconds; U value; U from; int once; };

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct function_list *real = NULL; /* the real module's list */
static struct function_list shim;         /* the copy handed out, some entries replaced by wrappers */
static U calls[NFUNCS];                   /* intercepted calls per function, for @N */
static char last_file[4096];              /* file spec last checked, so refusals are reported once */

static void say(const char *text) { (void)!write(2, text, strlen(text)); }

static int slot_of(const char *name, size_t len)
{
    for (int i = 0; i < NFUNCS; i++)
        if (strlen(FUNCS[i].name) == len && strncmp(FUNCS[i].name, name, len) == 0)
            return i;
    return -1;
}

/* Parse one entry "FUNCTION=ACTION[@N]" (no separators inside); slot -1 means not a usable entry. */
static int parse_entry(const char *s, size_t len, struct fault *f, int complain)
{
    char buf[256], msg[400];
    while (len && (*s == ' ' || *s == '\t' || *s == '\r')) s++, len--;
    while (len && (s[len - 1] == ' ' || s[len - 1] == '\t' || s[len - 1] == '\r')) len--;
    if (len == 0 || len >= sizeof buf)
        return -1;
    memcpy(buf, s, len);
    buf[len] = 0;
    int once = len > 1 && buf[len - 1] == '!';
    if (once)
        buf[--len] = 0;
    char *eq = strchr(buf, '='), *at = strchr(buf, '@');
    int slot = eq ? (eq - buf == 1 && buf[0] == '*' ? SLOT_ALL : slot_of(buf, (size_t)(eq - buf))) : -1;
    const char *why = NULL;
    memset(f, 0, sizeof *f);
    f->from = 1;
    f->once = once;
    if (at) {
        *at = 0;
        f->from = strtoul(at + 1, NULL, 10);
    }
    if (slot == -1)
        why = "unknown PKCS#11 v2.40 function";
    else if (slot >= 0 && (FUNCS[slot].nargs > 6 || slot == SLOT_GET_FUNCTION_LIST))
        why = "cannot be wrapped (more than 6 arguments, or C_GetFunctionList)";
    else if (strcmp(eq + 1, "segv") == 0) f->action = SEGV;
    else if (strcmp(eq + 1, "abort") == 0) f->action = ABORT;
    else if (strcmp(eq + 1, "hang") == 0) f->action = HANG;
    else if (strncmp(eq + 1, "delay:", 6) == 0) f->action = DELAY, f->seconds = strtod(eq + 7, NULL);
    else if (strncmp(eq + 1, "rv:", 3) == 0) f->action = RV, f->value = strtoul(eq + 4, NULL, 16);
    else if (strncmp(eq + 1, "exit:", 5) == 0) f->action = EXIT, f->value = strtoul(eq + 6, NULL, 10);
    else why = "unknown action (segv, abort, hang, delay:S, rv:HEX, exit:CODE)";
    if (why) {
        if (complain) {
            snprintf(msg, sizeof msg, "faultshim: ignoring '%s': %s\n", buf, why);
            say(msg);
        }
        return -1;
    }
    return slot;
}

static int wrappable(int slot) { return FUNCS[slot].nargs <= 6 && slot != SLOT_GET_FUNCTION_LIST; }

/* The fault for `slot` at call number n in `spec` (last applicable entry wins); marks wrapped slots if asked. */
static void scan(const char *spec, int slot, U n, struct fault *out, int complain, int *wanted)
{
    struct fault f;
    while (spec && *spec) {
        size_t len = strcspn(spec, ";\n");
        int s = parse_entry(spec, len, &f, complain);
        if (s >= 0 && wanted)
            wanted[s] = 1;
        if (s == SLOT_ALL && wanted)
            for (int i = 0; i < NFUNCS; i++)
                wanted[i] = wrappable(i);
        if ((s == slot || (s == SLOT_ALL && slot >= 0)) && n >= f.from)
            *out = f;
        spec += len + (spec[len] != 0);
    }
}

/* The file's spec, re-read now (missing file: no faults). */
static void read_file(char *buf, size_t size)
{
    const char *path = getenv("CONFORMANCE_FAULT_FILE");
    FILE *fh = path ? fopen(path, "r") : NULL;
    size_t got = fh ? fread(buf, 1, size - 1, fh) : 0;
    buf[got] = 0;
    if (fh)
        fclose(fh);
}

static void fire(int slot, struct fault *f)
{
    static const char *names[] = {"none", "segv", "abort", "hang", "delay", "rv", "exit"};
    char msg[160];
    if (f->action == NONE)
        return;
    if (f->action == RV)
        snprintf(msg, sizeof msg, "faultshim: %s -> rv:%#lx\n", FUNCS[slot].name, f->value);
    else if (f->action == EXIT)
        snprintf(msg, sizeof msg, "faultshim: %s -> exit:%lu\n", FUNCS[slot].name, f->value);
    else if (f->action == DELAY && getenv("CONFORMANCE_FAULTS_QUIET"))
        msg[0] = 0; /* a latency on every call: one line each would be noise */
    else if (f->action == DELAY)
        snprintf(msg, sizeof msg, "faultshim: %s -> delay:%g\n", FUNCS[slot].name, f->seconds);
    else
        snprintf(msg, sizeof msg, "faultshim: %s -> %s\n", FUNCS[slot].name, names[f->action]);
    say(msg);
    switch (f->action) {
    case SEGV: {
        static int *volatile nowhere = NULL; /* volatile: a real invalid access, not a compiler trap */
        *nowhere = 1;
        break;
    }
    case ABORT:
        abort();
    case HANG:
        for (;;)
            pause(); /* like a module waiting forever for a device: only a signal ends the process */
    case DELAY: {
        struct timespec ts = {(time_t)f->seconds, (long)((f->seconds - (time_t)f->seconds) * 1e9)};
        while (nanosleep(&ts, &ts) != 0)
            ;
        break;
    }
    case EXIT:
        _exit((int)f->value); /* abrupt, as a module calling exit() from a bad state (no destructors run) */
    default:
        break;
    }
}

static CK_RV intercept(int slot, U a, U b, U c, U d, U e, U g)
{
    struct fault f = {NONE, 0, 0, 1};
    char file[sizeof last_file];
    U n = __atomic_add_fetch(&calls[slot], 1, __ATOMIC_SEQ_CST);
    read_file(file, sizeof file);
    pthread_mutex_lock(&lock);
    int changed = strcmp(file, last_file) != 0;
    if (changed)
        strcpy(last_file, file);
    pthread_mutex_unlock(&lock);
    scan(getenv("CONFORMANCE_FAULTS"), slot, n, &f, 0, NULL);
    scan(file, slot, n, &f, changed, NULL);
    if (f.once) {
        FILE *fh = fopen(getenv("CONFORMANCE_FAULT_FILE"), "w"); /* one shot: disarm before it fires */
        if (fh)
            fclose(fh);
    }
    fire(slot, &f);
    if (f.action == RV)
        return f.value;
    return ((fn6)real->fn[slot])(a, b, c, d, e, g);
}

/* One wrapper per slot, so each knows which function it stands for. */
#define W(i) static CK_RV w##i(U a, U b, U c, U d, U e, U g) { return intercept(i, a, b, c, d, e, g); }
#define W10(t) W(t##0) W(t##1) W(t##2) W(t##3) W(t##4) W(t##5) W(t##6) W(t##7) W(t##8) W(t##9)
W(0) W(1) W(2) W(3) W(4) W(5) W(6) W(7) W(8) W(9) W10(1) W10(2) W10(3) W10(4) W10(5)
W(60) W(61) W(62) W(63) W(64) W(65) W(66) W(67)
#define R10(t) w##t##0, w##t##1, w##t##2, w##t##3, w##t##4, w##t##5, w##t##6, w##t##7, w##t##8, w##t##9
static void *const WRAPPERS[NFUNCS] = {
    w0, w1, w2, w3, w4, w5, w6, w7, w8, w9, R10(1), R10(2), R10(3), R10(4), R10(5),
    w60, w61, w62, w63, w64, w65, w66, w67,
};

CK_RV C_GetFunctionList(struct function_list **out);

/* Load the real module once and build the copy: wrapped where the spec names a function (everywhere but
 * C_GetFunctionList when a fault file may arm anything later). Called with `lock` held. */
static CK_RV load(void)
{
    if (real != NULL)
        return CKR_OK;
    const char *path = getenv("CONFORMANCE_FAULT_MODULE");
    void *handle = path ? dlopen(path, RTLD_NOW | RTLD_LOCAL) : NULL;
    CK_RV (*get)(struct function_list **) = handle ? (CK_RV (*)(struct function_list **))dlsym(handle, "C_GetFunctionList") : NULL;
    struct function_list *list = NULL;
    if (get == NULL || get(&list) != CKR_OK || list == NULL) {
        char msg[512];
        snprintf(msg, sizeof msg, "faultshim: cannot load CONFORMANCE_FAULT_MODULE=%s: %s\n",
                 path ? path : "(unset)", handle ? "its C_GetFunctionList failed" : dlerror());
        say(msg);
        return CKR_GENERAL_ERROR;
    }
    int wanted[NFUNCS] = {0};
    struct fault unused;
    scan(getenv("CONFORMANCE_FAULTS"), -1, 0, &unused, 1, wanted);
    shim = *list;
    for (int i = 0; i < NFUNCS; i++)
        if ((wanted[i] || getenv("CONFORMANCE_FAULT_FILE")) && wrappable(i))
            shim.fn[i] = WRAPPERS[i];
    shim.fn[SLOT_GET_FUNCTION_LIST] = (void *)C_GetFunctionList;
    real = list;
    return CKR_OK;
}

CK_RV C_GetFunctionList(struct function_list **out)
{
    if (out == NULL)
        return CKR_ARGUMENTS_BAD;
    pthread_mutex_lock(&lock);
    CK_RV rv = load();
    pthread_mutex_unlock(&lock);
    if (rv == CKR_OK)
        *out = &shim;
    return rv;
}

/* The real module's list, for the harness's ground truth (conformance/groundtruth.py): no faults there. */
void *conformance_tap_functions(void)
{
    pthread_mutex_lock(&lock);
    load();
    pthread_mutex_unlock(&lock);
    return real;
}
