/* pool.h: a persistent thread pool for data-parallel kernels.
 *
 * cst_pool_run(pool, fn, ctx) calls fn(ctx, ith, nth) once on every thread of
 * the pool (the calling thread is thread 0) and returns when all are done.
 * Work is split by (ith, nth), as ggml does. Workers spin briefly between jobs
 * (a decode step issues hundreds of small jobs) and then sleep on a futex-like
 * condition variable, so an idle server uses no CPU.
 *
 * A pool is driven by one thread at a time (not reentrant). cst_pool_barrier
 * may be called from inside fn to synchronise all nth threads of the current
 * job (for multi-phase ops).
 */
#ifndef CST_POOL_H
#define CST_POOL_H

typedef struct cst_pool cst_pool;
typedef void (*cst_pool_fn)(void *ctx, int ith, int nth);

/* n_threads <= 0 means the number of online CPUs. Returns NULL on failure. */
cst_pool *cst_pool_new(int n_threads);
void cst_pool_free(cst_pool *pool); /* NULL ok */
int cst_pool_size(const cst_pool *pool);
void cst_pool_run(cst_pool *pool, cst_pool_fn fn, void *ctx);
void cst_pool_barrier(cst_pool *pool);

/* Number of online CPUs (>= 1). */
int cst_cpu_count(void);

#endif
