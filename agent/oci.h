/* The OCI runtime config (config.json) of a container task, built with
 * jansson from the task template and the image's config: the program
 * (Entrypoint/Cmd overridden by command/args), env, cwd and user, Docker's
 * secure defaults (default capabilities, no_new_privs, masked and read-only
 * /proc and /sys paths, the default seccomp profile converted to OCI,
 * devices deny-all plus runc's defaults, tmpfs /dev), the generated /etc
 * files, mounts, resources under an absolute cgroupsPath, and the network
 * namespace. Pure functions except agent_oci_resolve_user (reads the
 * image's /etc/passwd and /etc/group). */
#ifndef SHOAL_AGENT_OCI_H
#define SHOAL_AGENT_OCI_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define AGENT_OCI_MAX_GROUPS 64

struct agent_oci_user {
    uid_t uid;
    gid_t gid;
    gid_t groups[AGENT_OCI_MAX_GROUPS];
    size_t n_groups;
};

struct agent_oci_in {
    const json_t *spec;         /* the task template (borrowed) */
    const json_t *image_config; /* the image config's "config" object, or NULL */
    const char *id;             /* container id = task id */
    const char *hostname;
    const char *rootfs;           /* the overlay's merged dir */
    const char *etc_dir;          /* holds hosts, hostname, resolv.conf */
    const char *netns;            /* path of the task's netns, NULL: the node's network */
    const char *volumes_dir;      /* named volumes live in VOLUMES/NAME/_data */
    const char *const *env_extra; /* "NAME=value" added last (SHOAL_*), NULL-terminated */
    struct agent_oci_user user;
    const json_t *seccomp; /* Docker-format profile (borrowed), NULL: no seccomp */
    bool swap_accounting;  /* memory.swap can be set (v1 memsw files, or v2) */
};

/* Builds config.json into *out (owned by the caller). Returns 0, or
 * -EINVAL with errmsg (256 bytes) when the task cannot be run (no program
 * in the template nor the image). */
int agent_oci_config(const struct agent_oci_in *in, json_t **out, char *errmsg);

/* The user the task runs as: the template's, else the image's, else "" (root). */
const char *agent_oci_user_name(const json_t *spec, const json_t *image_config);

/* Resolves "name", "uid", "name:group", "uid:gid" against the rootfs's
 * /etc/passwd and /etc/group (opened inside the rootfs: symlinks in the
 * image cannot point out of it). Supplementary groups are the groups that
 * list the user. Returns 0 or -ENOENT with errmsg (256 bytes). */
int agent_oci_resolve_user(const char *rootfs, const char *user, struct agent_oci_user *out,
                           char *errmsg);

/* The capabilities of the task: Docker's default set, then cap_add and
 * cap_drop of the template ("ALL" in either). A new list of "CAP_*". */
json_t *agent_oci_caps(const json_t *spec);

/* The OCI linux.seccomp of a Docker-format profile for this machine's
 * architecture and the given capabilities (entries needing a capability
 * the task lacks, or excluded by one it has, are left out). New object. */
json_t *agent_oci_seccomp(const json_t *profile, const json_t *caps);

#endif
