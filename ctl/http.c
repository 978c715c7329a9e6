/* shoal: a blocking JSON client for shoald on libcurl's easy interface. */
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/util.h"
#include "ctl/ctl.h"

#define CONNECT_TIMEOUT_S 5L
#define TOTAL_TIMEOUT_S   60L

struct answer {
    struct common_buf body;
    int too_large;
};

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct answer *a = userdata;
    size_t n = size * nmemb;
    if (n > CTL_MAX_ANSWER - a->body.len) {
        a->too_large = 1;
        return 0; /* makes curl fail the transfer with CURLE_WRITE_ERROR */
    }
    common_buf_append(&a->body, ptr, n);
    return n;
}

char *ctl_http_escape(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    struct common_buf b = {0};
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            strchr("-._~", *p)) {
            common_buf_append(&b, p, 1);
        } else {
            char esc[3] = {'%', hex[*p >> 4], hex[*p & 15]};
            common_buf_append(&b, esc, 3);
        }
    }
    return common_buf_take(&b, NULL);
}

void ctl_http_close(struct ctl_ctx *ctx)
{
    if (ctx->curl)
        curl_easy_cleanup(ctx->curl);
    ctx->curl = NULL;
}

static CURL *get_handle(struct ctl_ctx *ctx)
{
    if (!ctx->curl) {
        ctx->curl = curl_easy_init();
        if (!ctx->curl) {
            fprintf(stderr, "shoal: out of memory creating a libcurl handle\n");
            abort();
        }
    }
    return ctx->curl;
}

/* Builds the request headers (transferred: curl_slist_free_all). */
static struct curl_slist *make_headers(const struct ctl_ctx *ctx, int has_body)
{
    struct curl_slist *h = NULL;
    h = curl_slist_append(h, "Accept: application/json");
    h = curl_slist_append(h, "Expect:");
    if (has_body)
        h = curl_slist_append(h, "Content-Type: application/json");
    if (ctx->token) {
        struct common_buf auth = {0};
        common_buf_printf(&auth, "Authorization: Bearer %s", ctx->token);
        h = curl_slist_append(h, auth.data);
        explicit_bzero(auth.data, auth.len);
        common_buf_free(&auth);
    }
    if (!h) {
        fprintf(stderr, "shoal: out of memory building request headers\n");
        abort();
    }
    return h;
}

/* Fills ctx->errmsg for a transfer that failed inside curl and returns the
 * negative errno documented for ctl_http_request. */
static int transport_error(struct ctl_ctx *ctx, CURLcode code, const char *errbuf,
                           const struct answer *a)
{
    const char *why = errbuf[0] ? errbuf : curl_easy_strerror(code);
    if (a->too_large) {
        snprintf(ctx->errmsg, sizeof(ctx->errmsg),
                 "the answer of shoald at %s is larger than %u bytes", ctx->addr, CTL_MAX_ANSWER);
        return -E2BIG;
    }
    if (code == CURLE_URL_MALFORMAT || code == CURLE_UNSUPPORTED_PROTOCOL) {
        snprintf(ctx->errmsg, sizeof(ctx->errmsg), "invalid address %s: %s", ctx->addr, why);
        return -EINVAL;
    }
    snprintf(ctx->errmsg, sizeof(ctx->errmsg), "cannot reach shoald at %s: %s", ctx->addr, why);
    return -EHOSTUNREACH;
}

/* Copies at most max bytes of s into out as one line, control characters
 * replaced, so that an odd answer cannot mess up the terminal. */
static void snippet(char *out, size_t size, const char *s, size_t len, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < len && i < max && n + 1 < size; i++)
        out[n++] = ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ? ' ' : s[i];
    out[n] = '\0';
}

/* Fills ctx->errmsg from a non-2xx answer: its JSON error body when it has
 * one, else the start of the body. */
static void answer_error(struct ctl_ctx *ctx, long status, const struct answer *a)
{
    json_auto_t *j = a->body.len ? json_loadb(a->body.data, a->body.len, 0, NULL) : NULL;
    const char *error = json_string_value(json_object_get(j, "error"));
    const char *field = json_string_value(json_object_get(j, "field"));
    if (error && field && *field) {
        snprintf(ctx->errmsg, sizeof(ctx->errmsg), "%s (field: %s) [HTTP %ld]", error, field,
                 status);
    } else if (error) {
        snprintf(ctx->errmsg, sizeof(ctx->errmsg), "%s [HTTP %ld]", error, status);
    } else {
        char text[128];
        snippet(text, sizeof(text), a->body.data ? a->body.data : "", a->body.len, 100);
        snprintf(ctx->errmsg, sizeof(ctx->errmsg), "shoald answered HTTP %ld%s%s", status,
                 text[0] ? ": " : "", text);
    }
    if (status == 401 && !ctx->token) {
        size_t len = strlen(ctx->errmsg);
        snprintf(ctx->errmsg + len, sizeof(ctx->errmsg) - len,
                 " (no token given: use --token-file, SHOAL_TOKEN_FILE or SHOAL_TOKEN)");
    }
}

/* Parses a 2xx answer into *out. Returns 0 or -EBADMSG with errmsg set. */
static int parse_answer(struct ctl_ctx *ctx, const struct common_buf *body, json_t **out)
{
    json_error_t jerr;
    if (body->len == 0) {
        snprintf(ctx->errmsg, sizeof(ctx->errmsg), "shoald at %s sent an empty answer", ctx->addr);
        return -EBADMSG;
    }
    *out = json_loadb(body->data, body->len, JSON_DECODE_ANY, &jerr);
    if (!*out) {
        snprintf(ctx->errmsg, sizeof(ctx->errmsg), "shoald at %s sent invalid JSON: %s", ctx->addr,
                 jerr.text);
        return -EBADMSG;
    }
    return 0;
}

static void set_options(CURL *c, const char *method, const char *url, const char *body,
                        struct curl_slist *headers, struct answer *a, char *errbuf)
{
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "shoal/" CTL_VERSION);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT_S);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, TOTAL_TIMEOUT_S);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, a);
}

void ctl_http_answer_free(struct ctl_http_answer *ans)
{
    common_buf_free(&ans->body);
    *ans = (struct ctl_http_answer){.index = -1};
}

/* The value of the X-Shoal-Index header of the answer c just received, -1
 * when absent or not a number. */
static long long index_header(CURL *c)
{
    struct curl_header *h = NULL;
    if (curl_easy_header(c, "X-Shoal-Index", 0, CURLH_HEADER, -1, &h) != CURLHE_OK || !h->value)
        return -1;
    char *end;
    errno = 0;
    long long v = strtoll(h->value, &end, 10);
    return (end == h->value || *end || errno || v < 0) ? -1 : v;
}

int ctl_http_send(struct ctl_ctx *ctx, const char *method, const char *path, json_t *body,
                  struct ctl_http_answer *ans)
{
    CURL *c = get_handle(ctx);
    char errbuf[CURL_ERROR_SIZE] = "";
    struct answer a = {0};
    int rv = 0;

    *ans = (struct ctl_http_answer){.index = -1};
    if (!ctx->addr) {
        snprintf(ctx->errmsg, sizeof(ctx->errmsg), "no address to send the request to");
        return -EINVAL;
    }
    _cleanup_free_ char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    if (body && !text) {
        snprintf(ctx->errmsg, sizeof(ctx->errmsg), "cannot encode the request body as JSON");
        return -EINVAL;
    }
    _cleanup_free_ char *url = xmalloc(strlen(ctx->addr) + strlen(path) + 1);
    sprintf(url, "%s%s", ctx->addr, path);
    struct curl_slist *headers = make_headers(ctx, body != NULL);
    set_options(c, method, url, text, headers, &a, errbuf);

    CURLcode res = curl_easy_perform(c);
    if (res != CURLE_OK) {
        rv = transport_error(ctx, res, errbuf, &a);
    } else {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &ans->status);
        if (ans->status < 200 || ans->status > 299) {
            answer_error(ctx, ans->status, &a);
            rv = -EREMOTEIO;
        } else {
            ans->index = index_header(c);
        }
    }
    /* The handle points to headers, text, errbuf and a until reset; the
     * reset keeps its connection for the next request. */
    curl_easy_reset(c);
    curl_slist_free_all(headers);
    if (rv == 0)
        ans->body = a.body;
    else
        common_buf_free(&a.body);
    return rv;
}

int ctl_http_request(struct ctl_ctx *ctx, const char *method, const char *path, json_t *body,
                     json_t **out_json, long *status)
{
    struct ctl_http_answer ans;
    if (out_json)
        *out_json = NULL;
    int rv = ctl_http_send(ctx, method, path, body, &ans);
    if (rv == 0 && out_json)
        rv = parse_answer(ctx, &ans.body, out_json);
    if (status)
        *status = ans.status;
    ctl_http_answer_free(&ans);
    return rv;
}
