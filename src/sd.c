/* sd.c: placeholder, being written: the systemd protocols (issue 5). */
#include "config.h"

#include "wharfd.h"

int sd_notify_state(const char *fmt, ...)
{
    (void)fmt;
    return 0;
}

double sd_watchdog_interval(void)
{
    return 0;
}

int sd_listen_sockets(struct sd_socket **out)
{
    *out = NULL;
    return 0;
}
