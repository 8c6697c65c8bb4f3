/*
 * Allocation counter for `cargo bench --bench compare`, loaded with LD_PRELOAD.
 *
 * The crate forbids unsafe code in every target (Cargo.toml `[lints]`), so the bench cannot
 * define a Rust `#[global_allocator]`. Instead the bench compiles this file with the system C
 * compiler and re-runs itself with it preloaded. Every allocation of the process goes through
 * here: Rust's System allocator and the C code of the crypto provider (aws-lc / ring) alike.
 * The real work is done by glibc's own malloc (`__libc_*`).
 *
 * The bench reads the counters in safe Rust with std::env::var("__LAZYTLS_ALLOC_STATS"):
 * this file's getenv answers that one name with "allocs frees bytes live" and looks every
 * other name up in `environ`, exactly as glibc does.
 *
 *   allocs  malloc, calloc, realloc (non-null result) and the aligned variants
 *   frees   free of a non-null pointer, and realloc(p, 0)
 *   bytes   sum of requested sizes of those allocations
 *   live    sum of malloc_usable_size() over blocks currently allocated
 */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);
extern void *__libc_memalign(size_t, size_t);
extern void *__libc_valloc(size_t);
extern void *__libc_pvalloc(size_t);
extern char **environ;

static uint64_t n_allocs, n_frees, n_bytes;
static int64_t n_live;

static inline void on_alloc(void *p, size_t requested) {
    if (!p) return;
    __atomic_fetch_add(&n_allocs, 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&n_bytes, (uint64_t)requested, __ATOMIC_RELAXED);
    __atomic_fetch_add(&n_live, (int64_t)malloc_usable_size(p), __ATOMIC_RELAXED);
}

static inline void on_free(void *p) {
    if (!p) return;
    __atomic_fetch_add(&n_frees, 1, __ATOMIC_RELAXED);
    __atomic_fetch_sub(&n_live, (int64_t)malloc_usable_size(p), __ATOMIC_RELAXED);
}

void *malloc(size_t n) {
    void *p = __libc_malloc(n);
    on_alloc(p, n);
    return p;
}

void *calloc(size_t a, size_t b) {
    void *p = __libc_calloc(a, b);
    on_alloc(p, a * b);
    return p;
}

void free(void *p) {
    on_free(p);
    __libc_free(p);
}

void *realloc(void *old, size_t n) {
    if (!old) return malloc(n);
    if (n == 0) {
        free(old);
        return NULL;
    }
    int64_t old_size = (int64_t)malloc_usable_size(old);
    void *p = __libc_realloc(old, n);
    if (p) {
        __atomic_fetch_add(&n_allocs, 1, __ATOMIC_RELAXED);
        __atomic_fetch_add(&n_bytes, (uint64_t)n, __ATOMIC_RELAXED);
        __atomic_fetch_add(&n_live, (int64_t)malloc_usable_size(p) - old_size, __ATOMIC_RELAXED);
    }
    return p;
}

void *reallocarray(void *old, size_t a, size_t b) {
    size_t n;
    if (__builtin_mul_overflow(a, b, &n)) {
        errno = ENOMEM;
        return NULL;
    }
    return realloc(old, n);
}

void *memalign(size_t align, size_t n) {
    void *p = __libc_memalign(align, n);
    on_alloc(p, n);
    return p;
}

void *aligned_alloc(size_t align, size_t n) {
    return memalign(align, n);
}

int posix_memalign(void **out, size_t align, size_t n) {
    if (align % sizeof(void *) != 0 || (align & (align - 1)) != 0 || align == 0) return EINVAL;
    void *p = memalign(align, n);
    if (!p) return ENOMEM;
    *out = p;
    return 0;
}

void *valloc(size_t n) {
    void *p = __libc_valloc(n);
    on_alloc(p, n);
    return p;
}

void *pvalloc(size_t n) {
    void *p = __libc_pvalloc(n);
    on_alloc(p, n);
    return p;
}

static char *put_u64(char *at, uint64_t v) {
    char tmp[24];
    int i = 0;
    do {
        tmp[i++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (i) *at++ = tmp[--i];
    return at;
}

static char stats[128];

char *getenv(const char *name) {
    if (!name) return NULL;
    if (strcmp(name, "__LAZYTLS_ALLOC_STATS") == 0) {
        /* Only the bench's main thread asks, between measured regions. */
        int64_t live = __atomic_load_n(&n_live, __ATOMIC_RELAXED);
        char *at = stats;
        at = put_u64(at, __atomic_load_n(&n_allocs, __ATOMIC_RELAXED));
        *at++ = ' ';
        at = put_u64(at, __atomic_load_n(&n_frees, __ATOMIC_RELAXED));
        *at++ = ' ';
        at = put_u64(at, __atomic_load_n(&n_bytes, __ATOMIC_RELAXED));
        *at++ = ' ';
        if (live < 0) {
            *at++ = '-';
            live = -live;
        }
        at = put_u64(at, (uint64_t)live);
        *at = 0;
        return stats;
    }
    size_t len = strlen(name);
    if (!environ || len == 0 || strchr(name, '=')) return NULL;
    for (char **e = environ; *e; e++) {
        if (strncmp(*e, name, len) == 0 && (*e)[len] == '=') return *e + len + 1;
    }
    return NULL;
}
