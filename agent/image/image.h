/* shoal-image: the node's image store and registry client, a helper program
 * shoald spawns per pull so that libcurl and hostile layers stay out of the
 * daemon. Declarations shared by the files of agent/image/. */
#ifndef SHOAL_AGENT_IMAGE_IMAGE_H
#define SHOAL_AGENT_IMAGE_IMAGE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <openssl/evp.h>

#define IMG_ERR_SIZE    512
#define IMG_DIGEST_SIZE 72 /* "sha256:" + 64 hex + NUL */
#define IMG_MAX_JSON    (4u << 20)
#define IMG_MAX_LAYERS  128

/* One run of the program: parsed options and the error of the command. */
struct img_ctx {
    char store[4096];      /* absolute store directory */
    const char **insecure; /* borrowed from argv */
    size_t n_insecure;
    const char *auth_file; /* borrowed from argv; may be NULL */
    const char **keep;     /* borrowed from argv: image ids in use */
    size_t n_keep;
    int lock_fd;            /* flock of STORE/lock, -1 when not held */
    char err[IMG_ERR_SIZE]; /* "context: cause" of the failure */
};

/* A parsed image reference. host is empty for a local-only image. */
struct img_ref {
    char host[256];
    char repo[256];
    char tag[129];
    char digest[IMG_DIGEST_SIZE];
    char full[720]; /* normalised: host/repo:tag, host/repo@digest or repo:tag */
};

/* util.c */
/* Sets c->err from a format and returns rv (a negative errno). */
int img_fail(struct img_ctx *c, int rv, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Prepends "context: " to c->err and returns rv. */
int img_wrap(struct img_ctx *c, int rv, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

struct img_hash {
    EVP_MD_CTX *md;
};
void img_hash_init(struct img_hash *h);
void img_hash_update(struct img_hash *h, const void *p, size_t n);
/* Writes "sha256:<hex>" into out (IMG_DIGEST_SIZE bytes) and frees h. */
void img_hash_final(struct img_hash *h, char *out);
void img_hash_free(struct img_hash *h);
/* Returns 1 when s is "sha256:" followed by 64 lowercase hex digits. */
int img_digest_valid(const char *s);

/* Removes a tree without following symlinks or crossing mounts. */
int img_rm_rf(const char *path);
/* Bytes used by a tree (st_blocks), 0 on error. */
uint64_t img_du(const char *path);
/* Reads a whole file of at most max bytes: returns a NUL-terminated buffer
 * (transferred: free()) or NULL with errno set. */
char *img_read_file(const char *path, size_t max, size_t *len);
/* Parses a JSON document from memory; NULL with c->err set. */
json_t *img_json_parse(struct img_ctx *c, const char *what, const char *buf, size_t len);
/* Base64 helpers (OpenSSL). Return bytes written or -1. */
int img_b64_encode(const void *in, size_t n, char *out, size_t out_size);
int img_b64_decode(const char *in, char *out, size_t out_size);

/* ref.c */
/* Parses REF; a first component with '.', ':' or "localhost" is a registry. */
int img_ref_parse(struct img_ctx *c, const char *s, struct img_ref *r);

/* store.c */
int img_store_open(struct img_ctx *c, const char *dir);
/* Takes the exclusive store lock and empties STORE/tmp (only the lock holder
 * writes there, so whatever is left is from a crashed run). */
int img_store_lock(struct img_ctx *c);
void img_blob_path(const struct img_ctx *c, const char *digest, char *out, size_t size);
int img_blob_exists(const struct img_ctx *c, const char *digest);
/* Creates a temp file in STORE/tmp: fd returned, its path in out. */
int img_tmp_file(struct img_ctx *c, char *out, size_t size);
/* Renames a verified temp file to the blob of digest. */
int img_blob_commit(struct img_ctx *c, const char *tmp, const char *digest);
/* Reads a blob and checks its sha256; transferred buffer or NULL. */
char *img_blob_read(struct img_ctx *c, const char *digest, size_t max, size_t *len);
/* Stores a buffer as a blob; writes its digest. */
int img_blob_put(struct img_ctx *c, const void *buf, size_t len, char *digest);
/* Loads STORE/index.json (an empty index when missing); new reference. */
json_t *img_index_load(struct img_ctx *c);
int img_index_save(struct img_ctx *c, json_t *idx);
/* Finds the image id of a ref, an id or a unique id prefix; NULL if none. */
const char *img_index_find(json_t *idx, const char *name);
/* The printed object of an image: new reference or NULL with c->err. */
json_t *img_describe(struct img_ctx *c, json_t *idx, const char *id, const char *ref);

/* A resolved image whose blobs are all in the store. */
struct img_manifest {
    char digest[IMG_DIGEST_SIZE]; /* manifest */
    char config[IMG_DIGEST_SIZE];
    char layers[IMG_MAX_LAYERS][IMG_DIGEST_SIZE];
    int64_t config_size; /* from the descriptors; -1 when not given */
    int64_t layer_sizes[IMG_MAX_LAYERS];
    size_t n_layers;
};
/* Parses an image manifest document into m (digest left untouched). */
int img_manifest_parse(struct img_ctx *c, const char *buf, size_t len, struct img_manifest *m);
/* Checks the config, unpacks the rootfs unless present, records ref (may be
 * NULL) in the index. Returns the printed object or NULL with c->err. */
json_t *img_install(struct img_ctx *c, const char *ref, const struct img_manifest *m);

/* admin.c */
int img_cmd_inspect(struct img_ctx *c, const char *name, json_t **out);
int img_cmd_ls(struct img_ctx *c, json_t **out);
int img_cmd_rm(struct img_ctx *c, const char *name, json_t **out);
int img_cmd_gc(struct img_ctx *c, json_t **out);

/* unpack.c */
/* Unpacks the layers (blobs, in order) into a temp dir in a chrooted child,
 * checking every diff_id, then renames it to dest. Nothing is left on error. */
int img_unpack(struct img_ctx *c, const struct img_manifest *m, json_t *diff_ids, const char *dest);

/* registry.c */
struct img_reg;
int img_reg_open(struct img_ctx *c, const struct img_ref *r, struct img_reg **out);
void img_reg_close(struct img_reg *g);
/* GETs a manifest by tag or digest: body transferred, content type copied.
 * -ENOENT when the registry says it does not exist, -EHOSTUNREACH when the
 * registry cannot be reached. */
int img_reg_manifest(struct img_reg *g, const char *what, char **body, size_t *len, char *ctype,
                     size_t ctype_size);
/* Fetches a blob into the store, verifying its digest (no-op if present);
 * more than size bytes (when size >= 0) fails at once. */
int img_reg_blob(struct img_reg *g, const char *digest, int64_t size);

/* pull.c, load.c */
/* Picks the linux/amd64 entry of an index or manifest list. */
int img_select_platform(struct img_ctx *c, json_t *doc, char *digest);
int img_cmd_pull(struct img_ctx *c, const char *ref, json_t **out);
int img_cmd_load(struct img_ctx *c, const char *file, json_t **out);

#endif
