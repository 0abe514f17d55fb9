/*
 * file: sends the content of one file (SPEC.md section 5).
 *
 * Stream listeners (TCP, UNIX, TLS): sends the file's content as it is when
 * the connection is served (it is opened again for each connection, so an
 * edited file is served at once), then returns 0 and wharfd closes. What
 * the peer sends is never read.
 *
 * UDP listeners: not supported (handle_datagrams is NULL, which wharfd
 * reports as a config error).
 *
 * Options: path (required), the file to serve, relative to the config
 * file's directory unless absolute. init checks that it is a readable
 * regular file, so that a typo is a config error rather than a refused
 * connection. Any other option is a config error.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <wharf/plugin.h>

#define FILE_CHUNK 8192            /* on the task's stack */

/* Checks now what each connection will do: open and read a regular file
 * (O_NONBLOCK: a FIFO must not hang the check). Returns NULL, or why not. */
static const char *file_check(const char *path)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    int rc, error;

    if (fd < 0)
        return strerror(errno);
    rc = fstat(fd, &st);
    error = errno;
    close(fd);
    if (rc < 0)
        return strerror(error);
    if (S_ISDIR(st.st_mode))
        return strerror(EISDIR);
    return S_ISREG(st.st_mode) ? NULL : "not a regular file";
}

/* Resolves path against dir (unless absolute) into a new string. */
static char *file_resolve(const char *dir, const char *path)
{
    size_t len = strlen(dir) + 1 + strlen(path) + 1;
    char *resolved = malloc(len);

    if (!resolved)
        return NULL;
    if (path[0] == '/' || dir[0] == '\0')
        snprintf(resolved, len, "%s", path);
    else
        snprintf(resolved, len, "%s/%s", dir, path);
    return resolved;
}

/* The instance is the resolved path: a string malloc'ed here, read-only
 * until fini frees it. */
static void *file_init(json_t *options, const struct wharf_plugin_env *env,
                       struct wharf_plugin_error *err)
{
    const char *key, *path = NULL, *why;
    json_t *value;
    char *resolved;

    json_object_foreach(options, key, value) {
        snprintf(err->key, sizeof(err->key), "%s", key);
        if (strcmp(key, "path") != 0) {
            snprintf(err->message, sizeof(err->message),
                     "unknown option \"%s\" (file takes path)", key);
            return NULL;
        }
        if (!json_is_string(value) || json_string_length(value) == 0) {
            snprintf(err->message, sizeof(err->message),
                     "path must be a non-empty string");
            return NULL;
        }
        path = json_string_value(value);
    }
    if (!path) {
        err->key[0] = '\0';
        snprintf(err->message, sizeof(err->message), "the option path is required");
        return NULL;
    }
    if (!(resolved = file_resolve(env->config_dir ? env->config_dir : "", path))) {
        err->key[0] = err->message[0] = '\0';   /* out of memory */
        return NULL;
    }
    if ((why = file_check(resolved)) != NULL) {
        snprintf(err->key, sizeof(err->key), "path");
        snprintf(err->message, sizeof(err->message), "cannot read \"%s\": %s",
                 resolved, why);
        free(resolved);
        return NULL;
    }
    return resolved;
}

static int file_serve(void *instance, struct wharf_stream *stream)
{
    const char *path = instance;
    struct wharf_stream *in;
    char buf[FILE_CHUNK];
    ssize_t n;
    int rc = wharf_file_read_open(path, &in);

    if (rc < 0)
        return rc;
    while ((n = wharf_receive(in, buf, sizeof(buf))) > 0) {
        if ((rc = wharf_send(stream, buf, (size_t)n)) < 0)
            break;
    }
    wharf_free(in);
    if (rc < 0)
        return rc;
    return n == WHARF_EOF ? 0 : (int)n;
}

static void file_fini(void *instance)
{
    free(instance);
}

const struct wharf_plugin wharf_plugin = {
    WHARF_PLUGIN_HEAD("file"),
    .init = file_init,
    .handle_stream = file_serve,
    .fini = file_fini,
};
