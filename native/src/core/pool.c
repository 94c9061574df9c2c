/*
 * The library's persistent thread pool. One job runs at a time; the calling thread takes part. A
 * caller that finds the pool busy (another Java thread, or a nested call from inside a task) runs its
 * tasks itself, so the pool can never deadlock and every call stays correct under any concurrency.
 * Workers spin briefly after a job before sleeping, so back-to-back calls (decode) do not pay a wake-up.
 */
#include "internal.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#define MAX_THREADS 1024
#define SPIN_ROUNDS 2000 /* ~50 us: covers back-to-back calls without burning a core between them */

typedef struct pool {
    int32_t requested;           /* threads asked for, the caller included */
    int32_t nworkers;            /* threads besides the caller (fewer if the OS refused some) */
    pthread_t *workers;
    pthread_mutex_t m;
    pthread_cond_t cv_work, cv_done;
    _Atomic uint64_t generation; /* bumped for each job */
    isthmus_task_fn fn;
    void *ctx;
    int64_t ntasks;
    _Atomic int64_t next;
    _Atomic int32_t busy_workers; /* workers still in the current job */
    int shutdown;
} pool;

static pthread_mutex_t submit_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic int32_t workers_alive;  /* isthmus_get_memory_stats */
static pool *the_pool;                 /* guarded by submit_lock */
static _Atomic int32_t wanted_threads; /* 0 = default (online CPUs) */

static int32_t default_threads(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1) n = 1;
    if (n > MAX_THREADS) n = MAX_THREADS;
    return (int32_t)n;
}

int32_t isthmus__threads(void) {
    int32_t w = atomic_load(&wanted_threads);
    return w > 0 ? w : default_threads();
}

isthmus_status isthmus_set_num_threads(int32_t n) {
    if (n < 1 || n > MAX_THREADS)
        return FAIL_ARG("isthmus_set_num_threads: num_threads = %d, must be in [1, %d]", n,
                        MAX_THREADS);
    atomic_store(&wanted_threads, n);
    return ISTHMUS_OK;
}

int32_t isthmus_get_num_threads(void) { return isthmus__threads(); }

static void run_tasks(pool *p) {
    for (;;) {
        int64_t t = atomic_fetch_add_explicit(&p->next, 1, memory_order_relaxed);
        if (t >= p->ntasks) break;
        p->fn(p->ctx, t);
    }
}

static void *worker_main(void *arg) {
    pool *p = arg;
    uint64_t seen = 0;
    for (;;) {
        /* spin a little, then sleep until a new generation or shutdown */
        int spins = 0;
        while (atomic_load_explicit(&p->generation, memory_order_acquire) == seen &&
               spins < SPIN_ROUNDS) {
            __builtin_ia32_pause();
            spins++;
        }
        pthread_mutex_lock(&p->m);
        while (atomic_load(&p->generation) == seen && !p->shutdown) pthread_cond_wait(&p->cv_work, &p->m);
        if (p->shutdown) {
            pthread_mutex_unlock(&p->m);
            return NULL;
        }
        seen = atomic_load(&p->generation);
        pthread_mutex_unlock(&p->m);

        run_tasks(p);

        if (atomic_fetch_sub_explicit(&p->busy_workers, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&p->m);
            pthread_cond_signal(&p->cv_done);
            pthread_mutex_unlock(&p->m);
        }
    }
}

static void pool_destroy(pool *p) {
    if (p == NULL) return;
    pthread_mutex_lock(&p->m);
    p->shutdown = 1;
    pthread_cond_broadcast(&p->cv_work);
    pthread_mutex_unlock(&p->m);
    for (int32_t i = 0; i < p->nworkers; i++) pthread_join(p->workers[i], NULL);
    workers_alive -= p->nworkers;
    pthread_mutex_destroy(&p->m);
    pthread_cond_destroy(&p->cv_work);
    pthread_cond_destroy(&p->cv_done);
    isthmus__free(p->workers);
    isthmus__free(p);
}

static pool *pool_create(int32_t nthreads) {
    pool *p = isthmus__calloc(1, sizeof *p);
    if (p == NULL) return NULL;
    p->requested = nthreads;
    p->nworkers = nthreads - 1;
    p->workers = isthmus__calloc((size_t)(p->nworkers > 0 ? p->nworkers : 1), sizeof(pthread_t));
    if (p->workers == NULL) {
        isthmus__free(p);
        return NULL;
    }
    pthread_mutex_init(&p->m, NULL);
    pthread_cond_init(&p->cv_work, NULL);
    pthread_cond_init(&p->cv_done, NULL);
    int32_t started = 0;
    for (; started < p->nworkers; started++)
        if (pthread_create(&p->workers[started], NULL, worker_main, p) != 0) break;
    p->nworkers = started; /* fewer threads if the OS refused some: still correct */
    workers_alive += started;
    return p;
}

int32_t isthmus__pool_workers(void) { return workers_alive; }

void isthmus__parallel_for(int64_t ntasks, isthmus_task_fn fn, void *ctx) {
    if (ntasks <= 0) return;
    int32_t want = isthmus__threads();
    if (ntasks == 1 || want == 1 || pthread_mutex_trylock(&submit_lock) != 0) {
        for (int64_t t = 0; t < ntasks; t++) fn(ctx, t);
        return;
    }
    if (the_pool == NULL || the_pool->requested != want) {
        pool_destroy(the_pool);
        the_pool = pool_create(want);
    }
    pool *p = the_pool;
    if (p == NULL || p->nworkers == 0) {
        pthread_mutex_unlock(&submit_lock);
        for (int64_t t = 0; t < ntasks; t++) fn(ctx, t);
        return;
    }
    pthread_mutex_lock(&p->m);
    p->fn = fn;
    p->ctx = ctx;
    p->ntasks = ntasks;
    atomic_store(&p->next, 0);
    atomic_store(&p->busy_workers, p->nworkers);
    atomic_fetch_add_explicit(&p->generation, 1, memory_order_release);
    pthread_cond_broadcast(&p->cv_work);
    pthread_mutex_unlock(&p->m);

    run_tasks(p);

    /* wait for the workers: spin first (short jobs), then sleep */
    int spins = 0;
    while (atomic_load_explicit(&p->busy_workers, memory_order_acquire) != 0 && spins < SPIN_ROUNDS) {
        __builtin_ia32_pause();
        spins++;
    }
    pthread_mutex_lock(&p->m);
    while (atomic_load(&p->busy_workers) != 0) pthread_cond_wait(&p->cv_done, &p->m);
    pthread_mutex_unlock(&p->m);
    pthread_mutex_unlock(&submit_lock);
}

__attribute__((destructor)) static void pool_shutdown(void) {
    pthread_mutex_lock(&submit_lock);
    pool_destroy(the_pool);
    the_pool = NULL;
    pthread_mutex_unlock(&submit_lock);
}
