/* pool.c: persistent thread pool; see pool.h.
 *
 * Dispatch: the driver publishes (fn, ctx) and bumps an atomic generation
 * counter; workers spin on it for a while, then sleep on a condition variable.
 * Completion: each thread decrements `pending`; the driver spins until zero.
 * The barrier is a sense-reversing counter barrier.
 */
#define _GNU_SOURCE
#include "pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#else
#define cpu_relax() ((void)0)
#endif

#define SPIN_ITERS 200000
/* Spins before a waiting thread starts yielding its CPU in each further spin:
 * when cores are oversubscribed (other processes), the thread being waited
 * for may be queued behind the waiter itself. */
#define YIELD_AFTER 16384

static inline void wait_step(int *spins) {
    if (*spins < YIELD_AFTER) {
        (*spins)++;
        cpu_relax();
    } else {
        sched_yield();
    }
}

struct cst_pool {
    int n;
    pthread_t *threads;
    cst_pool_fn fn;
    void *ctx;
    _Atomic unsigned gen;     /* bumped once per job */
    _Atomic int pending;      /* threads still running the job */
    _Atomic int stop;
    _Atomic int n_sleeping;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* barrier */
    _Atomic int bar_count;
    _Atomic unsigned bar_sense;
};

struct worker_arg {
    cst_pool *pool;
    int ith;
};

int cst_cpu_count(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

static void *worker_main(void *p) {
    struct worker_arg *wa = p;
    cst_pool *pool = wa->pool;
    int ith = wa->ith;
    free(wa);
    unsigned seen = 0;
    for (;;) {
        unsigned g;
        int spins = 0;
        while ((g = atomic_load_explicit(&pool->gen, memory_order_acquire)) == seen) {
            if (atomic_load_explicit(&pool->stop, memory_order_relaxed)) return NULL;
            if (++spins < SPIN_ITERS) {
                if (spins < YIELD_AFTER) {
                    cpu_relax();
                } else {
                    sched_yield();
                    spins += 63; /* a yield counts as 64 spins: sleep after about as long */
                }
                continue;
            }
            pthread_mutex_lock(&pool->mu);
            atomic_fetch_add(&pool->n_sleeping, 1);
            while (atomic_load(&pool->gen) == seen && !atomic_load(&pool->stop))
                pthread_cond_wait(&pool->cv, &pool->mu);
            atomic_fetch_sub(&pool->n_sleeping, 1);
            pthread_mutex_unlock(&pool->mu);
            spins = 0;
        }
        if (atomic_load(&pool->stop)) return NULL;
        seen = g;
        pool->fn(pool->ctx, ith, pool->n);
        atomic_fetch_sub_explicit(&pool->pending, 1, memory_order_acq_rel);
    }
}

cst_pool *cst_pool_new(int n_threads) {
    if (n_threads <= 0) n_threads = cst_cpu_count();
    cst_pool *pool = calloc(1, sizeof *pool);
    if (!pool) return NULL;
    pool->n = n_threads;
    pthread_mutex_init(&pool->mu, NULL);
    pthread_cond_init(&pool->cv, NULL);
    pool->threads = calloc((size_t)n_threads, sizeof(pthread_t));
    if (!pool->threads) {
        free(pool);
        return NULL;
    }
    for (int i = 1; i < n_threads; i++) {
        struct worker_arg *wa = malloc(sizeof *wa);
        if (!wa) goto fail;
        wa->pool = pool;
        wa->ith = i;
        if (pthread_create(&pool->threads[i], NULL, worker_main, wa) != 0) {
            free(wa);
            pool->n = i; /* join only what started */
            goto fail;
        }
    }
    return pool;
fail:
    cst_pool_free(pool);
    return NULL;
}

void cst_pool_free(cst_pool *pool) {
    if (!pool) return;
    pthread_mutex_lock(&pool->mu);
    atomic_store(&pool->stop, 1);
    pthread_cond_broadcast(&pool->cv);
    pthread_mutex_unlock(&pool->mu);
    for (int i = 1; i < pool->n; i++) pthread_join(pool->threads[i], NULL);
    pthread_mutex_destroy(&pool->mu);
    pthread_cond_destroy(&pool->cv);
    free(pool->threads);
    free(pool);
}

int cst_pool_size(const cst_pool *pool) { return pool ? pool->n : 1; }

void cst_pool_run(cst_pool *pool, cst_pool_fn fn, void *ctx) {
    if (!pool || pool->n == 1) {
        fn(ctx, 0, 1);
        return;
    }
    pool->fn = fn;
    pool->ctx = ctx;
    atomic_store_explicit(&pool->pending, pool->n - 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&pool->gen, 1, memory_order_release);
    if (atomic_load(&pool->n_sleeping) > 0) {
        pthread_mutex_lock(&pool->mu);
        pthread_cond_broadcast(&pool->cv);
        pthread_mutex_unlock(&pool->mu);
    }
    fn(ctx, 0, pool->n);
    int spins = 0;
    while (atomic_load_explicit(&pool->pending, memory_order_acquire) > 0) wait_step(&spins);
}

void cst_pool_barrier(cst_pool *pool) {
    if (!pool || pool->n == 1) return;
    unsigned sense = atomic_load_explicit(&pool->bar_sense, memory_order_relaxed);
    if (atomic_fetch_add_explicit(&pool->bar_count, 1, memory_order_acq_rel) == pool->n - 1) {
        atomic_store_explicit(&pool->bar_count, 0, memory_order_relaxed);
        atomic_fetch_add_explicit(&pool->bar_sense, 1, memory_order_release);
    } else {
        int spins = 0;
        while (atomic_load_explicit(&pool->bar_sense, memory_order_acquire) == sense) wait_step(&spins);
    }
}
