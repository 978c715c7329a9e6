/* Small helpers every module uses: cleanup attributes, allocation that aborts
 * on out-of-memory, container_of, and string utilities. */
#ifndef SHOAL_COMMON_UTIL_H
#define SHOAL_COMMON_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))
#define ARRAY_SIZE(a)                   (sizeof(a) / sizeof((a)[0]))

/* Hands a pointer on: returns it and clears the variable so that its cleanup
 * attribute no longer frees it. */
#define TAKE_PTR(p)                                                                                \
    ({                                                                                             \
        __typeof__(p) take_ptr_tmp_ = (p);                                                         \
        (p) = NULL;                                                                                \
        take_ptr_tmp_;                                                                             \
    })

static inline void common_freep(void *p)
{
    free(*(void **)p);
}
static inline void common_closep(int *fd)
{
    if (*fd >= 0)
        close(*fd);
}
#define _cleanup_free_  __attribute__((cleanup(common_freep)))
#define _cleanup_close_ __attribute__((cleanup(common_closep)))

/* Allocation that aborts the process on out-of-memory (crun, redis). */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

/* Copies at most dst_size-1 bytes of src into dst, always terminating it.
 * Returns the length of src (so truncation is len >= dst_size). */
size_t common_strlcpy(char *dst, const char *src, size_t dst_size);

/* Milliseconds on the monotonic clock and on the wall clock. */
uint64_t common_now_ms(void);
uint64_t common_wall_ms(void);

/* Fills buf with n random bytes from getrandom(2). Returns 0 or -errno. */
int common_random(void *buf, size_t n);

/* Writes n random bytes as 2n lowercase hex characters plus a NUL into out,
 * which must hold 2n+1 bytes. Returns 0 or -errno. */
int common_random_hex(char *out, size_t n);

/* Compares two NUL-terminated strings in time independent of where they
 * differ (for secrets). Returns 1 when equal. */
int common_secret_equal(const char *a, const char *b);

/* Removes a directory tree (best effort) without following symlinks or
 * crossing into mounted file systems (a still-mounted rootfs stays). */
void common_rm_tree(const char *path);

#endif
