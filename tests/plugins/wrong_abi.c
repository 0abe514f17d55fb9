/*
 * wrong_abi.c: a test plugin built for a plugin API major that this wharfd
 * does not provide; the loader must refuse it before calling anything.
 * (The too-new-minor and too-small-descriptor cases are covered in
 * check_plugin.c on descriptors built in the test, through plugin_check.)
 */
#include <stdlib.h>
#include <wharf/plugin.h>

static void *wrong_init(json_t *options, const struct wharf_plugin_env *env,
                        struct wharf_plugin_error *err)
{
    abort();        /* never called: the ABI check comes first */
}

static int wrong_stream(void *instance, struct wharf_stream *stream)
{
    abort();
}

const struct wharf_plugin wharf_plugin = {
    /* WHARF_PLUGIN_HEAD spelled out, with the next major */
    .api_major = WHARF_API_MAJOR + 1,
    .api_minor = 0,
    .size = sizeof(struct wharf_plugin),
    .name = "wrong_abi",
    .init = wrong_init,
    .handle_stream = wrong_stream,
};
