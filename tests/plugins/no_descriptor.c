/*
 * no_descriptor.c: a shared object that loads fine but exports no
 * `wharf_plugin` descriptor (only something else): not a wharf plugin.
 */
#include <wharf/plugin.h>

extern const struct wharf_plugin wharf_plugin_v2;
extern int not_a_plugin(void);

int not_a_plugin(void)
{
    return 42;
}

/* A near miss: the right type under the wrong name. */
const struct wharf_plugin wharf_plugin_v2 = {
    WHARF_PLUGIN_HEAD("no_descriptor"),
};
