/*
 * no_handler.c: a test plugin with a valid descriptor but neither a stream
 * nor a datagram handler: it can serve no listener at all.
 */
#include <stdlib.h>
#include <wharf/plugin.h>

static void *none_init(json_t *options, const struct wharf_plugin_env *env,
                       struct wharf_plugin_error *err)
{
    abort();        /* never called: the handler check comes first */
}

const struct wharf_plugin wharf_plugin = {
    WHARF_PLUGIN_HEAD("no_handler"),
    .init = none_init,
};
