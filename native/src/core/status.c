/* Thread-local error text, version queries and small shared checks. */
#include "internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>

static _Thread_local char last_error[512];

const char *isthmus_last_error(void) { return last_error; }

void isthmus__clear_error(void) { last_error[0] = '\0'; }

isthmus_status isthmus__fail(isthmus_status status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return status;
}

int32_t isthmus_abi_version(void) { return ISTHMUS_ABI_VERSION; }

const char *isthmus_version(void) { return ISTHMUS_VERSION_STRING; }

int isthmus__extent_ok(int64_t rows, int64_t ld) {
    if (rows <= 0 || ld <= 0) return 0;
    return ld <= ISTHMUS_MAX_ELEMS / rows;
}

void *isthmus__aligned_alloc(size_t bytes) {
    void *p = NULL;
    if (bytes == 0) bytes = 64;
    if (posix_memalign(&p, 64, bytes) != 0) return NULL;
    return p;
}

void isthmus__aligned_free(void *p) { free(p); }

/* Per-thread scratch that grows on demand and is freed when the thread exits (pthread key). */
#include <pthread.h>

typedef struct scratch_buf {
    void *p;
    size_t bytes;
} scratch_buf;

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static _Atomic int64_t scratch_live_bytes;

static void scratch_free(void *v) {
    scratch_buf *b = v;
    scratch_live_bytes -= (int64_t)b->bytes;
    free(b->p);
    free(b);
}

static void scratch_init(void) { pthread_key_create(&scratch_key, scratch_free); }

void *isthmus__scratch(size_t bytes) {
    pthread_once(&scratch_once, scratch_init);
    scratch_buf *b = pthread_getspecific(scratch_key);
    if (!b) {
        b = calloc(1, sizeof *b);
        if (!b) return NULL;
        if (pthread_setspecific(scratch_key, b) != 0) {
            free(b);
            return NULL;
        }
    }
    if (b->bytes < bytes) {
        size_t want = bytes + bytes / 4;
        void *p = isthmus__aligned_alloc(want);
        if (!p) return NULL;
        free(b->p);
        scratch_live_bytes += (int64_t)want - (int64_t)b->bytes;
        b->p = p;
        b->bytes = want;
    }
    return b->p;
}
