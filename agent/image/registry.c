/* The OCI distribution API client on libcurl's easy interface (this helper
 * has no loop to block): /v2/ probe, Basic and Bearer-token auth from the
 * node's auth file, manifests and blobs streamed to the store with their
 * sha256 checked on the way. */
#include <curl/curl.h>
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

#include "agent/image/image.h"
#include "common/util.h"

#define ACCEPT_MANIFESTS                                                                           \
    "Accept: application/vnd.oci.image.index.v1+json, "                                            \
    "application/vnd.oci.image.manifest.v1+json, "                                                 \
    "application/vnd.docker.distribution.manifest.list.v2+json, "                                  \
    "application/vnd.docker.distribution.manifest.v2+json"

struct img_reg {
    struct img_ctx *c;
    CURL *curl;
    char base[600]; /* scheme://host */
    char host[256];
    char repo[256];
    char creds[600]; /* "user:pass" or empty */
    char auth[4200]; /* "Authorization: ..." or empty */
    char challenge[1024];
    char ctype[256];
    char curl_err[CURL_ERROR_SIZE];
};

/* Where a response body goes: memory (up to max) or a file being hashed. */
struct sink {
    struct img_reg *g;
    char *mem;
    size_t len, max;
    int fd;
    struct img_hash *hash;
    int64_t limit, written; /* file: fail past limit (when >= 0) */
    int failed;
};

static size_t on_body(char *p, size_t size, size_t n, void *data)
{
    struct sink *s = data;
    size_t len = size * n;
    long code = 0;
    curl_easy_getinfo(s->g->curl, CURLINFO_RESPONSE_CODE, &code);
    if (code != 200 || s->fd < 0) {
        size_t max = code == 200 ? s->max : 4096;
        if (s->len + len > max)
            return s->failed = 1, 0;
        s->mem = xrealloc(s->mem, s->len + len + 1);
        memcpy(s->mem + s->len, p, len);
        s->len += len;
        s->mem[s->len] = '\0';
        return len;
    }
    s->written += (int64_t)len;
    if (s->limit >= 0 && s->written > s->limit)
        return s->failed = 3, 0;
    img_hash_update(s->hash, p, len);
    for (size_t done = 0; done < len;) {
        ssize_t w = write(s->fd, p + done, len - done);
        if (w < 0 && errno != EINTR)
            return s->failed = 2, 0;
        done += w > 0 ? (size_t)w : 0;
    }
    return len;
}

static size_t on_header(char *p, size_t size, size_t n, void *data)
{
    struct img_reg *g = data;
    size_t len = size * n;
    if (len >= 5 && strncmp(p, "HTTP/", 5) == 0) {
        g->challenge[0] = g->ctype[0] = '\0';
    } else if (len > 17 && strncasecmp(p, "WWW-Authenticate:", 17) == 0) {
        snprintf(g->challenge, sizeof(g->challenge), "%.*s", (int)(len - 17), p + 17);
    } else if (len > 13 && strncasecmp(p, "Content-Type:", 13) == 0) {
        snprintf(g->ctype, sizeof(g->ctype), "%.*s", (int)(len - 13), p + 13);
    }
    return len;
}

static void trim(char *s)
{
    size_t n = strlen(s), i = 0;
    while (n > 0 && strchr(" \t\r\n", s[n - 1]))
        s[--n] = '\0';
    while (s[i] == ' ' || s[i] == '\t')
        i++;
    memmove(s, s + i, n - i + 1);
}

/* One GET; returns the HTTP status or -EHOSTUNREACH with c->err set. */
static int request(struct img_reg *g, const char *url, const char *accept, const char *auth,
                   struct sink *s)
{
    CURL *h = g->curl;
    struct curl_slist *hdrs = NULL;
    curl_easy_reset(h);
    if (accept)
        hdrs = curl_slist_append(hdrs, accept);
    if (auth && *auth)
        hdrs = curl_slist_append(hdrs, auth);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(h, CURLOPT_MAXREDIRS, 5L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 10L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "shoal-image/1");
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, g->curl_err);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, g);
    g->curl_err[0] = '\0';
    CURLcode cc = curl_easy_perform(h);
    curl_slist_free_all(hdrs);
    long code = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    trim(g->challenge);
    trim(g->ctype);
    if (s->failed == 1)
        return img_fail(g->c, -EFBIG, "%s: response larger than %zu bytes", url, s->max);
    if (s->failed == 2)
        return img_fail(g->c, -EIO, "%s: writing to the store: %s", url, strerror(errno));
    if (s->failed == 3)
        return img_fail(g->c, -EBADMSG, "%s: more than the %lld bytes its descriptor says", url,
                        (long long)s->limit);
    if (cc != CURLE_OK)
        return img_fail(g->c, -EHOSTUNREACH, "cannot reach registry %s: %s", g->host,
                        g->curl_err[0] ? g->curl_err : curl_easy_strerror(cc));
    return (int)code;
}

/* Value of key="value" (or key=value) in a WWW-Authenticate challenge. */
static void challenge_param(const char *ch, const char *key, char *out, size_t size)
{
    out[0] = '\0';
    size_t klen = strlen(key);
    for (const char *p = ch; (p = strcasestr(p, key)) != NULL; p += klen) {
        if ((p != ch && !strchr(" ,", p[-1])) || p[klen] != '=')
            continue;
        const char *v = p + klen + 1;
        size_t n = *v == '"' ? strcspn(++v, "\"") : strcspn(v, ", ");
        snprintf(out, size, "%.*s", (int)n, v);
        return;
    }
}

static int basic_header(struct img_reg *g, char *out, size_t size)
{
    char b64[900];
    if (!g->creds[0])
        return img_fail(g->c, -EACCES,
                        "registry %s requires authentication and the auth file has no "
                        "credentials for it",
                        g->host);
    img_b64_encode(g->creds, strlen(g->creds), b64, sizeof(b64));
    snprintf(out, size, "Authorization: Basic %s", b64);
    return 0;
}

static int fetch_token(struct img_reg *g, const char *ch)
{
    char realm[512], service[256], scope[512], url[2048], basic[1000] = "";
    challenge_param(ch, "realm", realm, sizeof(realm));
    challenge_param(ch, "service", service, sizeof(service));
    challenge_param(ch, "scope", scope, sizeof(scope));
    if (strncmp(realm, "http://", 7) != 0 && strncmp(realm, "https://", 8) != 0)
        return img_fail(g->c, -EPROTO, "registry %s: Bearer challenge without http(s) realm",
                        g->host);
    if (!scope[0])
        snprintf(scope, sizeof(scope), "repository:%s:pull", g->repo);
    char *es = curl_easy_escape(g->curl, service, 0), *esc = curl_easy_escape(g->curl, scope, 0);
    snprintf(url, sizeof(url), "%s%c%s%s&scope=%s", realm, strchr(realm, '?') ? '&' : '?',
             service[0] ? "service=" : "", service[0] ? es : "", esc);
    curl_free(es);
    curl_free(esc);
    if (g->creds[0] && basic_header(g, basic, sizeof(basic)) != 0)
        return -EACCES;
    struct sink s = {.g = g, .fd = -1, .max = 1u << 20};
    int code = request(g, url, NULL, basic, &s);
    _cleanup_free_ char *body = s.mem;
    if (code < 0)
        return img_wrap(g->c, code, "token from %s", realm);
    if (code != 200)
        return img_fail(g->c, code == 401 || code == 403 ? -EACCES : -EPROTO,
                        "registry %s: token server %s answered %d%s", g->host, realm, code,
                        code == 401 ? " (bad credentials?)" : "");
    json_auto_t *doc = img_json_parse(g->c, "token response", body ? body : "", s.len);
    const char *tok = json_string_value(json_object_get(doc, "token"));
    if (!tok)
        tok = json_string_value(json_object_get(doc, "access_token"));
    if (!tok || strlen(tok) > 4000 || strpbrk(tok, "\r\n"))
        return img_fail(g->c, -EPROTO, "registry %s: token response has no usable token", g->host);
    snprintf(g->auth, sizeof(g->auth), "Authorization: Bearer %s", tok);
    return 0;
}

static int authorize(struct img_reg *g)
{
    if (strncasecmp(g->challenge, "Bearer ", 7) == 0) {
        char ch[sizeof(g->challenge)];
        common_strlcpy(ch, g->challenge, sizeof(ch));
        return fetch_token(g, ch);
    }
    if (strncasecmp(g->challenge, "Basic", 5) == 0)
        return basic_header(g, g->auth, sizeof(g->auth));
    return img_fail(g->c, -EACCES, "registry %s: unsupported authentication \"%.100s\"", g->host,
                    g->challenge);
}

/* GET with one retry after answering an auth challenge. */
static int get(struct img_reg *g, const char *path, const char *accept, struct sink *s)
{
    char url[2048];
    snprintf(url, sizeof(url), "%s%s", g->base, path);
    for (int attempt = 0;; attempt++) {
        int code = request(g, url, accept, g->auth, s);
        if (code != 401 || attempt > 0)
            return code;
        if (s->fd >= 0 && (ftruncate(s->fd, 0) != 0 || lseek(s->fd, 0, SEEK_SET) != 0))
            return img_fail(g->c, -EIO, "truncate: %s", strerror(errno));
        free(s->mem);
        s->mem = NULL;
        s->len = 0;
        int rv = authorize(g);
        if (rv != 0)
            return rv;
    }
}

static int load_creds(struct img_reg *g)
{
    struct img_ctx *c = g->c;
    size_t len;
    if (!c->auth_file)
        return 0;
    _cleanup_free_ char *buf = img_read_file(c->auth_file, 1u << 20, &len);
    if (!buf)
        return img_fail(c, -errno, "auth file %s: %s", c->auth_file, strerror(errno));
    json_auto_t *doc = img_json_parse(c, c->auth_file, buf, len);
    if (!doc)
        return -EINVAL;
    const char *key;
    json_t *v;
    json_object_foreach(json_object_get(doc, "auths"), key, v)
    {
        const char *k = strstr(key, "://") ? strstr(key, "://") + 3 : key;
        size_t n = strcspn(k, "/");
        if (n != strlen(g->host) || strncmp(k, g->host, n) != 0)
            continue;
        const char *user = json_string_value(json_object_get(v, "username"));
        const char *pass = json_string_value(json_object_get(v, "password"));
        const char *b64 = json_string_value(json_object_get(v, "auth"));
        if (user && pass)
            snprintf(g->creds, sizeof(g->creds), "%s:%s", user, pass);
        else if (!b64 || img_b64_decode(b64, g->creds, sizeof(g->creds)) < 0 ||
                 !strchr(g->creds, ':'))
            return img_fail(c, -EINVAL, "auth file %s: bad entry for %s", c->auth_file, key);
        return 0;
    }
    return 0;
}

int img_reg_open(struct img_ctx *c, const struct img_ref *r, struct img_reg **out)
{
    struct img_reg *g = xcalloc(1, sizeof(*g));
    int insecure = 0;
    g->c = c;
    for (size_t i = 0; i < c->n_insecure; i++)
        insecure |= strcmp(c->insecure[i], r->host) == 0;
    snprintf(g->base, sizeof(g->base), "%s://%s", insecure ? "http" : "https", r->host);
    common_strlcpy(g->host, r->host, sizeof(g->host));
    common_strlcpy(g->repo, r->repo, sizeof(g->repo));
    g->curl = curl_easy_init();
    if (!g->curl)
        abort();
    int rv = load_creds(g);
    if (rv != 0) {
        img_reg_close(g);
        return rv;
    }
    struct sink s = {.g = g, .fd = -1, .max = 1u << 20};
    int code = get(g, "/v2/", NULL, &s);
    free(s.mem);
    if (code >= 0 && code != 200) {
        code = img_fail(c, code == 401 || code == 403 ? -EACCES : -EPROTO,
                        "registry %s: /v2/ answered %d%s", g->host, code,
                        code == 401 ? " (authentication refused)" : "");
    }
    if (code < 0) {
        img_reg_close(g);
        return code;
    }
    *out = g;
    return 0;
}

void img_reg_close(struct img_reg *g)
{
    if (!g)
        return;
    curl_easy_cleanup(g->curl);
    free(g);
}

static int status_error(struct img_reg *g, int code, const char *what, const char *body)
{
    if (code < 0)
        return code;
    json_auto_t *doc = body ? json_loads(body, 0, NULL) : NULL;
    json_t *e0 = json_array_get(json_object_get(doc, "errors"), 0);
    const char *msg = json_string_value(json_object_get(e0, "message"));
    return img_fail(g->c,
                    code == 404                  ? -ENOENT
                    : code == 401 || code == 403 ? -EACCES
                                                 : -EPROTO,
                    "%s/%s %s: %s (HTTP %d)", g->host, g->repo, what,
                    code == 404 ? "not found"
                    : msg       ? msg
                                : "refused",
                    code);
}

int img_reg_manifest(struct img_reg *g, const char *what, char **body, size_t *len, char *ctype,
                     size_t ctype_size)
{
    char path[1024];
    snprintf(path, sizeof(path), "/v2/%s/manifests/%s", g->repo, what);
    struct sink s = {.g = g, .fd = -1, .max = IMG_MAX_JSON};
    int code = get(g, path, ACCEPT_MANIFESTS, &s);
    if (code != 200) {
        int rv =
            status_error(g, code, (snprintf(path, sizeof(path), "manifest %s", what), path), s.mem);
        free(s.mem);
        return rv;
    }
    *body = s.mem ? s.mem : xstrdup("");
    *len = s.len;
    common_strlcpy(ctype, g->ctype, ctype_size);
    return 0;
}

int img_reg_blob(struct img_reg *g, const char *digest, int64_t size)
{
    char path[1024], tmp[PATH_MAX], got[IMG_DIGEST_SIZE];
    if (img_blob_exists(g->c, digest))
        return 0;
    _cleanup_close_ int fd = img_tmp_file(g->c, tmp, sizeof(tmp));
    if (fd < 0)
        return fd;
    struct img_hash h;
    img_hash_init(&h);
    struct sink s = {.g = g, .fd = fd, .hash = &h, .limit = size};
    snprintf(path, sizeof(path), "/v2/%s/blobs/%s", g->repo, digest);
    int code = get(g, path, NULL, &s);
    if (code != 200) {
        img_hash_free(&h);
        unlink(tmp);
        int rv =
            status_error(g, code, (snprintf(path, sizeof(path), "blob %s", digest), path), s.mem);
        free(s.mem);
        return rv;
    }
    img_hash_final(&h, got);
    if (strcmp(got, digest) != 0) {
        unlink(tmp);
        return img_fail(g->c, -EBADMSG, "blob %s: digest mismatch (received %s)", digest, got);
    }
    return img_blob_commit(g->c, tmp, digest);
}
