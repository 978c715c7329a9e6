/* shoal-image helpers: errors, sha256, tree removal, small files, base64. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "agent/image/image.h"
#include "common/util.h"

int img_fail(struct img_ctx *c, int rv, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, sizeof(c->err), fmt, ap);
    va_end(ap);
    return rv;
}

int img_wrap(struct img_ctx *c, int rv, const char *fmt, ...)
{
    char prefix[IMG_ERR_SIZE], old[IMG_ERR_SIZE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    common_strlcpy(old, c->err, sizeof(old));
    snprintf(c->err, sizeof(c->err), "%s: %s", prefix, old);
    return rv;
}

void img_hash_init(struct img_hash *h)
{
    h->md = EVP_MD_CTX_new();
    if (!h->md || EVP_DigestInit_ex(h->md, EVP_sha256(), NULL) != 1)
        abort();
}

void img_hash_update(struct img_hash *h, const void *p, size_t n)
{
    if (n > 0 && EVP_DigestUpdate(h->md, p, n) != 1)
        abort();
}

void img_hash_final(struct img_hash *h, char *out)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    if (EVP_DigestFinal_ex(h->md, md, &n) != 1)
        abort();
    img_hash_free(h);
    memcpy(out, "sha256:", 7);
    for (unsigned i = 0; i < n; i++)
        snprintf(out + 7 + 2 * i, 3, "%02x", md[i]);
}

void img_hash_free(struct img_hash *h)
{
    EVP_MD_CTX_free(h->md);
    h->md = NULL;
}

int img_digest_valid(const char *s)
{
    if (!s || strncmp(s, "sha256:", 7) != 0 || strlen(s) != 71)
        return 0;
    for (const char *p = s + 7; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return 0;
    return 1;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    int rv = (flag == FTW_DP) ? rmdir(path) : unlink(path);
    return (rv != 0 && errno != ENOENT) ? -1 : 0;
}

int img_rm_rf(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return errno == ENOENT ? 0 : -errno;
    if (!S_ISDIR(st.st_mode))
        return unlink(path) == 0 ? 0 : -errno;
    return nftw(path, rm_one, 32, FTW_DEPTH | FTW_PHYS | FTW_MOUNT) == 0 ? 0 : -errno;
}

static uint64_t du_total;

static int du_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)path;
    (void)flag;
    (void)ftw;
    du_total += (uint64_t)st->st_blocks * 512;
    return 0;
}

uint64_t img_du(const char *path)
{
    du_total = 0;
    if (nftw(path, du_one, 32, FTW_PHYS | FTW_MOUNT) != 0)
        return 0;
    return du_total;
}

char *img_read_file(const char *path, size_t max, size_t *len)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0)
        return NULL;
    if (!S_ISREG(st.st_mode) || (size_t)st.st_size > max) {
        errno = EFBIG;
        return NULL;
    }
    size_t n = (size_t)st.st_size, got = 0;
    char *buf = xmalloc(n + 1);
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r <= 0) {
            free(buf);
            errno = r == 0 ? EIO : errno;
            return NULL;
        }
        got += (size_t)r;
    }
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

json_t *img_json_parse(struct img_ctx *c, const char *what, const char *buf, size_t len)
{
    json_error_t je;
    json_t *j = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
    if (!j)
        img_fail(c, -EINVAL, "%s: invalid JSON: %s (line %d)", what, je.text, je.line);
    else if (!json_is_object(j)) {
        json_decref(j);
        j = NULL;
        img_fail(c, -EINVAL, "%s: not a JSON object", what);
    }
    return j;
}

int img_b64_encode(const void *in, size_t n, char *out, size_t out_size)
{
    if (4 * ((n + 2) / 3) + 1 > out_size)
        return -1;
    return EVP_EncodeBlock((unsigned char *)out, in, (int)n);
}

int img_b64_decode(const char *in, char *out, size_t out_size)
{
    size_t n = strlen(in);
    if (n % 4 != 0 || 3 * (n / 4) + 1 > out_size)
        return -1;
    int r = EVP_DecodeBlock((unsigned char *)out, (const unsigned char *)in, (int)n);
    if (r < 0)
        return -1;
    while (n > 0 && in[n - 1] == '=' && r > 0) {
        r--;
        n--;
    }
    out[r] = '\0';
    return r;
}
