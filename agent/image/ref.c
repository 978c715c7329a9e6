/* Image references: [host[:port]/]path[:tag][@sha256:digest]. */
#include <errno.h>
#include <string.h>

#include "agent/image/image.h"
#include "common/util.h"

static int repo_valid(const char *s)
{
    if (!*s || *s == '/' || s[strlen(s) - 1] == '/' || strstr(s, "//") || strstr(s, ".."))
        return 0;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || strchr("._/-", *p)))
            return 0;
    return 1;
}

static int tag_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 128 || *s == '.' || *s == '-')
        return 0;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              strchr("._-", *p)))
            return 0;
    return 1;
}

static int host_valid(const char *s)
{
    if (!*s)
        return 0;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              strchr(".-:[]", *p)))
            return 0;
    return 1;
}

int img_ref_parse(struct img_ctx *c, const char *s, struct img_ref *r)
{
    memset(r, 0, sizeof(*r));
    char buf[720];
    if (common_strlcpy(buf, s, sizeof(buf)) >= sizeof(buf) || !*s)
        return img_fail(c, -EINVAL, "invalid image reference \"%.200s\"", s);
    char *at = strchr(buf, '@');
    if (at) {
        *at = '\0';
        if (!img_digest_valid(at + 1))
            return img_fail(c, -EINVAL, "invalid image reference \"%.200s\": bad digest", s);
        common_strlcpy(r->digest, at + 1, sizeof(r->digest));
    }
    char *name = buf, *slash = strchr(buf, '/');
    if (slash && (memchr(buf, '.', (size_t)(slash - buf)) ||
                  memchr(buf, ':', (size_t)(slash - buf)) || strncmp(buf, "localhost/", 10) == 0)) {
        *slash = '\0';
        if (!host_valid(buf) || strlen(buf) >= sizeof(r->host))
            return img_fail(c, -EINVAL, "invalid image reference \"%.200s\": bad host", s);
        common_strlcpy(r->host, buf, sizeof(r->host));
        name = slash + 1;
    }
    char *last = strrchr(name, '/');
    char *colon = strchr(last ? last : name, ':');
    if (colon) {
        *colon = '\0';
        if (!tag_valid(colon + 1))
            return img_fail(c, -EINVAL, "invalid image reference \"%.200s\": bad tag", s);
        common_strlcpy(r->tag, colon + 1, sizeof(r->tag));
    }
    if (!repo_valid(name) || strlen(name) >= sizeof(r->repo))
        return img_fail(c, -EINVAL, "invalid image reference \"%.200s\": bad name", s);
    common_strlcpy(r->repo, name, sizeof(r->repo));
    if (!r->tag[0] && !r->digest[0])
        common_strlcpy(r->tag, "latest", sizeof(r->tag));
    snprintf(r->full, sizeof(r->full), "%s%s%s%s%s%s%s", r->host, r->host[0] ? "/" : "", r->repo,
             r->tag[0] ? ":" : "", r->tag, r->digest[0] ? "@" : "", r->digest);
    return 0;
}
