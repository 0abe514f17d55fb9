/* stats.c: placeholder, being written: the statistics (issue 6). */
#include "config.h"

#include "wharfd.h"

void stats_attach(struct server *srv)
{
    (void)srv;
}
