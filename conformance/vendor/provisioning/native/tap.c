/* The conformance tap: a pass-through PKCS#11 "module" that lets the harness see the same module instance the
 * binding uses.
 *
 * Some modules (p11-kit-proxy) hand out a new, separately initialised instance with its own session handles on
 * every C_GetFunctionList call, so the harness's ground truth (C_GetSessionInfo & co. through ctypes) cannot see
 * python-pkcs11's sessions. Loaded in its place, the tap asks the real module (CONFORMANCE_TAP_MODULE) for its
 * function list once and gives that very list to every caller; conformance_tap_functions() returns it to ctypes.
 * No call is wrapped: python-pkcs11 talks to the real module directly — except, when CONFORMANCE_TAP_GUARD is set
 * (a token that is not disposable), C_InitToken, C_InitPIN and C_SetPIN, which then return CKR_ACTION_PROHIBITED
 * without reaching the module: whatever a check does, the harness cannot re-initialise a real token or change
 * its PINs. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <pthread.h>
#include <string.h>

typedef unsigned long CK_RV;
typedef CK_RV (*get_function_list_fn)(void **);

#define CKR_OK 0UL
#define CKR_GENERAL_ERROR 5UL
#define CKR_ARGUMENTS_BAD 7UL
#define CKR_ACTION_PROHIBITED 0x1BUL

/* CK_FUNCTION_LIST (v2.40): a CK_VERSION, then 68 function pointers in pkcs11f.h order. */
#define FUNCTIONS 68
#define C_INITTOKEN 9
#define C_INITPIN 10
#define C_SETPIN 11
struct function_list {
    unsigned char major, minor;
    void *fn[FUNCTIONS];
};
static struct function_list guarded;

static CK_RV refuse(const char *name)
{
    fprintf(stderr, "conformance tap: %s refused: the token is not disposable\n", name);
    return CKR_ACTION_PROHIBITED;
}
static CK_RV refuse_init_token(unsigned long a, void *b, unsigned long c, void *d)
{ (void)a; (void)b; (void)c; (void)d; return refuse("C_InitToken"); }
static CK_RV refuse_init_pin(unsigned long a, void *b, unsigned long c)
{ (void)a; (void)b; (void)c; return refuse("C_InitPIN"); }
static CK_RV refuse_set_pin(unsigned long a, void *b, unsigned long c, void *d, unsigned long e)
{ (void)a; (void)b; (void)c; (void)d; (void)e; return refuse("C_SetPIN"); }

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static void *functions = NULL;  /* the real module's list (ground truth) */
static void *handed_out = NULL;  /* what the binding gets: the real list, or the guarded copy */

CK_RV C_GetFunctionList(void **out)
{
    CK_RV rv = CKR_OK;
    if (out == NULL)
        return CKR_ARGUMENTS_BAD;
    pthread_mutex_lock(&lock);
    if (functions == NULL) {
        const char *path = getenv("CONFORMANCE_TAP_MODULE");
        void *handle = path ? dlopen(path, RTLD_NOW | RTLD_LOCAL) : NULL;
        get_function_list_fn get = handle ? (get_function_list_fn)dlsym(handle, "C_GetFunctionList") : NULL;
        if (get == NULL) {
            fprintf(stderr, "conformance tap: cannot load CONFORMANCE_TAP_MODULE=%s: %s\n",
                    path ? path : "(unset)", dlerror());
            rv = CKR_GENERAL_ERROR;
        } else {
            rv = get(&functions);
            handed_out = functions;
            const char *guard = getenv("CONFORMANCE_TAP_GUARD");
            if (rv == CKR_OK && guard != NULL && *guard != '\0') {
                memcpy(&guarded, functions, sizeof guarded);
                guarded.fn[C_INITTOKEN] = (void *)refuse_init_token;
                guarded.fn[C_INITPIN] = (void *)refuse_init_pin;
                guarded.fn[C_SETPIN] = (void *)refuse_set_pin;
                handed_out = &guarded;
            }
        }
    }
    if (rv == CKR_OK)
        *out = handed_out;
    pthread_mutex_unlock(&lock);
    return rv;
}

void *conformance_tap_functions(void)
{
    return functions;
}
