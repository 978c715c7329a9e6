/* Placement constraints ("node.labels.zone==a", "node.role!=manager"):
 * parsed once per service, matched against nodes without allocating. */
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "common/util.h"
#include "scheduler/internal.h"

#define LABEL_PREFIX "node.labels."

static const char *attr_id(const struct sch_node *n)
{
    return n->id;
}

static const char *attr_name(const struct sch_node *n)
{
    return n->name ? n->name : "";
}

static const char *attr_hostname(const struct sch_node *n)
{
    return n->hostname ? n->hostname : attr_name(n);
}

static const char *attr_role(const struct sch_node *n)
{
    return n->role == SCH_ROLE_MANAGER ? "manager" : "worker";
}

static const struct {
    const char *name;
    enum sch__attr attr;
    const char *(*get)(const struct sch_node *n);
} attrs[] = {
    {"node.id", SCH__ATTR_ID, attr_id},
    {"node.name", SCH__ATTR_NAME, attr_name},
    {"node.hostname", SCH__ATTR_HOSTNAME, attr_hostname},
    {"node.role", SCH__ATTR_ROLE, attr_role},
};

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* Whether a[0..a_len) equals the string b (b shorter than a_len differs at
 * its NUL). */
static bool same_word(const char *a, size_t a_len, const char *b)
{
    return strncmp(a, b, a_len) == 0 && b[a_len] == '\0';
}

static bool same_value(const char *a, size_t a_len, const char *b)
{
    return strncasecmp(a, b, a_len) == 0 && b[a_len] == '\0';
}

/* Reads the attribute text[0..len) into out. */
static int parse_attr(const char *text, size_t len, struct sch__cons *out)
{
    size_t plen = strlen(LABEL_PREFIX);
    if (len > plen && strncmp(text, LABEL_PREFIX, plen) == 0) {
        out->attr = SCH__ATTR_LABEL;
        out->key = text + plen;
        out->key_len = len - plen;
        for (size_t i = 0; i < out->key_len; i++)
            if (is_blank(out->key[i]))
                return -EINVAL;
        return 0;
    }
    for (size_t i = 0; i < ARRAY_SIZE(attrs); i++) {
        if (same_word(text, len, attrs[i].name)) {
            out->attr = attrs[i].attr;
            return 0;
        }
    }
    return -EINVAL;
}

int sch__cons_parse(const char *text, struct sch__cons *out)
{
    if (!text)
        return -EINVAL;
    const char *eq = strstr(text, "==");
    const char *ne = strstr(text, "!=");
    const char *op = eq && (!ne || eq < ne) ? eq : ne;
    if (!op)
        return -EINVAL;
    *out = (struct sch__cons){.text = text, .ne = op == ne};
    const char *k = text;
    while (is_blank(*k))
        k++;
    size_t klen = (size_t)(op - k);
    while (klen > 0 && is_blank(k[klen - 1]))
        klen--;
    const char *v = op + 2;
    while (is_blank(*v))
        v++;
    size_t vlen = strcspn(v, " \t");
    if (v[vlen + strspn(v + vlen, " \t")] != '\0' || vlen == 0 || strcspn(v, "=!") < vlen)
        return -EINVAL;
    if (klen == 0 || parse_attr(k, klen, out) < 0)
        return -EINVAL;
    out->value = v;
    out->value_len = vlen;
    if (out->attr == SCH__ATTR_ROLE && !same_value(v, vlen, "manager") &&
        !same_value(v, vlen, "worker"))
        return -EINVAL;
    return 0;
}

int sch_constraint_valid(const char *constraint)
{
    struct sch__cons c;
    return sch__cons_parse(constraint, &c) == 0;
}

const char *sch__node_label(const struct sch_node *n, const char *key, size_t key_len)
{
    for (size_t i = 0; i < n->n_labels; i++)
        if (same_word(key, key_len, n->labels[i].key))
            return n->labels[i].value;
    return NULL;
}

bool sch__cons_match(const struct sch__cons *c, const struct sch_node *n)
{
    const char *have = NULL;
    if (c->attr == SCH__ATTR_LABEL) {
        have = sch__node_label(n, c->key, c->key_len);
    } else {
        for (size_t i = 0; i < ARRAY_SIZE(attrs); i++)
            if (attrs[i].attr == c->attr)
                have = attrs[i].get(n);
    }
    bool eq = have && same_value(c->value, c->value_len, have);
    return c->ne ? !eq : eq;
}
