/* A growable byte buffer, always NUL-terminated after its contents. */
#ifndef SHOAL_COMMON_BUF_H
#define SHOAL_COMMON_BUF_H

#include <stddef.h>

struct common_buf {
    char *data; /* owned; NULL until the first append */
    size_t len;
    size_t cap;
};

void common_buf_append(struct common_buf *b, const void *p, size_t n);
void common_buf_puts(struct common_buf *b, const char *s);
void common_buf_printf(struct common_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Empties the buffer, keeping its memory. */
void common_buf_reset(struct common_buf *b);
/* Frees the memory and empties the buffer. */
void common_buf_free(struct common_buf *b);
/* Hands the contents over (transferred: free with free()); the buffer is
 * left empty. Never NULL. */
char *common_buf_take(struct common_buf *b, size_t *len);

#endif
