/* Thread-local error text, version queries and small shared checks. */
#include "internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

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

/* Every allocation the library makes goes through isthmus__alloc / isthmus__free, which count it
 * (isthmus_get_memory_stats) and can be told to fail (isthmus_set_alloc_failure). Each block carries a
 * 64-byte header holding its size, so the returned pointer stays 64-byte aligned. */
#define ALLOC_HEADER 64

static _Atomic int64_t mem_live_bytes, mem_live_allocs, mem_peak_bytes, mem_total_allocs, mem_total_frees,
    mem_failed_allocs;
static _Atomic int64_t scratch_live_bytes;
static _Atomic int64_t alloc_fail_after = -1; /* -1: never; k >= 0: k more succeed, then all fail */

void *isthmus__alloc(size_t bytes) {
    if (bytes == 0) bytes = 1;
    if (bytes > (size_t)INT64_MAX - 2 * ALLOC_HEADER) return NULL;
    int64_t budget = atomic_load(&alloc_fail_after);
    if (budget >= 0) {
        for (;;) {
            if (budget <= 0) {
                mem_failed_allocs++;
                return NULL;
            }
            if (atomic_compare_exchange_weak(&alloc_fail_after, &budget, budget - 1)) break;
            if (budget < 0) break;
        }
    }
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes + ALLOC_HEADER) != 0) {
        mem_failed_allocs++;
        return NULL;
    }
    *(int64_t *)p = (int64_t)bytes;
    int64_t live = atomic_fetch_add(&mem_live_bytes, (int64_t)bytes) + (int64_t)bytes;
    mem_live_allocs++;
    mem_total_allocs++;
    int64_t peak = atomic_load(&mem_peak_bytes);
    while (live > peak && !atomic_compare_exchange_weak(&mem_peak_bytes, &peak, live)) {
    }
    return (char *)p + ALLOC_HEADER;
}

void *isthmus__calloc(size_t n, size_t size) {
    if (size != 0 && n > SIZE_MAX / size) return NULL;
    void *p = isthmus__alloc(n * size);
    if (p) memset(p, 0, n * size);
    return p;
}

void isthmus__free(void *q) {
    if (q == NULL) return;
    void *p = (char *)q - ALLOC_HEADER;
    mem_live_bytes -= *(int64_t *)p;
    mem_live_allocs--;
    mem_total_frees++;
    free(p);
}

void *isthmus__aligned_alloc(size_t bytes) { return isthmus__alloc(bytes); }

void isthmus__aligned_free(void *p) { isthmus__free(p); }

isthmus_status isthmus_get_memory_stats(isthmus_memory_stats *out) {
    if (out == NULL) return FAIL_ARG("isthmus_get_memory_stats: out is NULL");
    out->live_bytes = mem_live_bytes;
    out->live_allocs = mem_live_allocs;
    out->peak_bytes = mem_peak_bytes;
    out->total_allocs = mem_total_allocs;
    out->total_frees = mem_total_frees;
    out->failed_allocs = mem_failed_allocs;
    out->scratch_bytes = scratch_live_bytes;
    out->pool_threads = isthmus__pool_workers();
    return ISTHMUS_OK;
}

isthmus_status isthmus_set_alloc_failure(int64_t after) {
    if (after < -1) return FAIL_ARG("isthmus_set_alloc_failure: after = %lld, must be >= -1", (long long)after);
    alloc_fail_after = after;
    return ISTHMUS_OK;
}

/* Per-thread scratch that grows on demand and is freed when the thread exits (pthread key). */
#include <pthread.h>

typedef struct scratch_buf {
    void *p;
    size_t bytes;
} scratch_buf;

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static void scratch_free(void *v) {
    scratch_buf *b = v;
    scratch_live_bytes -= (int64_t)b->bytes;
    isthmus__free(b->p);
    isthmus__free(b);
}

static void scratch_init(void) { pthread_key_create(&scratch_key, scratch_free); }

void *isthmus__scratch(size_t bytes) {
    pthread_once(&scratch_once, scratch_init);
    scratch_buf *b = pthread_getspecific(scratch_key);
    if (!b) {
        b = isthmus__calloc(1, sizeof *b);
        if (!b) return NULL;
        if (pthread_setspecific(scratch_key, b) != 0) {
            isthmus__free(b);
            return NULL;
        }
    }
    if (b->bytes < bytes) {
        size_t want = bytes + bytes / 4;
        void *p = isthmus__aligned_alloc(want);
        if (!p) return NULL;
        isthmus__free(b->p);
        scratch_live_bytes += (int64_t)want - (int64_t)b->bytes;
        b->p = p;
        b->bytes = want;
    }
    return b->p;
}

isthmus_status isthmus_release_thread_scratch(void) {
    pthread_once(&scratch_once, scratch_init);
    scratch_buf *b = pthread_getspecific(scratch_key);
    if (b) {
        pthread_setspecific(scratch_key, NULL);
        scratch_free(b);
    }
    return ISTHMUS_OK;
}
