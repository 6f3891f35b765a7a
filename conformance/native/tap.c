/* The conformance tap: a pass-through PKCS#11 "module" that lets the harness see the same module instance the
 * binding uses.
 *
 * Some modules (p11-kit-proxy) hand out a new, separately initialised instance with its own session handles on
 * every C_GetFunctionList call, so the harness's ground truth (C_GetSessionInfo & co. through ctypes) cannot see
 * python-pkcs11's sessions. Loaded in its place, the tap asks the real module (CONFORMANCE_TAP_MODULE) for its
 * function list once and gives that very list to every caller; conformance_tap_functions() returns it to ctypes.
 * No call is wrapped: python-pkcs11 talks to the real module directly. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <pthread.h>

typedef unsigned long CK_RV;
typedef CK_RV (*get_function_list_fn)(void **);

#define CKR_OK 0UL
#define CKR_GENERAL_ERROR 5UL
#define CKR_ARGUMENTS_BAD 7UL

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static void *functions = NULL;

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
        }
    }
    if (rv == CKR_OK)
        *out = functions;
    pthread_mutex_unlock(&lock);
    return rv;
}

void *conformance_tap_functions(void)
{
    return functions;
}
