/*
 * wharf/net.h: TCP and UNIX socket streams and listeners, UDP sockets
 * (unconnected and connected), and socket addresses (AnyIO's networking).
 *
 * Socket streams set TCP_NODELAY; send_eof is shutdown(SHUT_WR). Receive
 * after the peer's end of stream is WHARF_EOF, again and again, after all
 * data before it; two tasks receiving on one socket get WHARF_EBUSY. Host
 * names are resolved off the event loop (wharf_to_thread).
 *
 * Streams ("tcp", "unix"): send after wharf_send_eof is WHARF_ECLOSED; a
 * reset by the peer is WHARF_EBROKEN, and stays so (a later receive does
 * not turn it into WHARF_EOF). wharf_wait for both directions at once
 * returns WHARF_EBUSY while another task waits on the socket.
 * Listeners ("tcp-listener", "unix-listener"): wharf_accept, wharf_wait.
 * Attributes: WHARF_ATTR_FAMILY, _FD, _LOCAL_ADDRESS, _LOCAL_PORT,
 * _REMOTE_ADDRESS, _REMOTE_PORT; the ports are -ENOENT on UNIX sockets, the
 * remote ones -ENOENT on listeners and unconnected UDP sockets.
 */
#ifndef WHARF_NET_H
#define WHARF_NET_H

#include <stddef.h>
#include <sys/socket.h>
#include <wharf/stream.h>

#ifdef __cplusplus
extern "C" {
#endif

#define WHARF_REUSE_PORT 0x1u    /* SO_REUSEPORT on a listener or UDP socket */
#define WHARF_V6ONLY     0x2u    /* IPV6_V6ONLY on an IPv6 socket */

/* Connects to host:port (name or numeric), optionally from local_host /
 * local_port (NULL / 0 for any). Returns 0; -ECONNREFUSED and other
 * -errno of connect(2); -EHOSTUNREACH/-ENOENT when the name does not
 * resolve; WHARF_ECANCELLED; WHARF_EINVAL (also outside a task). Each
 * resolved address is tried in turn; -EAFNOSUPPORT when local_host has no
 * address of a remote's family. */
int wharf_tcp_connect(const char *host, unsigned port, const char *local_host,
                      unsigned local_port, struct wharf_stream **out);

/* Listens on host:port (NULL host: 0.0.0.0; port 0: any free port, read it
 * with WHARF_ATTR_LOCAL_PORT). flags: WHARF_REUSE_PORT, WHARF_V6ONLY.
 * backlog <= 0 means SOMAXCONN. A name listens on its first address.
 * SO_REUSEADDR is always set; IPV6_V6ONLY is set to the flag either way.
 * Returns 0, -EADDRINUSE and other -errno, WHARF_EINVAL. */
int wharf_tcp_listen(const char *host, unsigned port, int backlog, unsigned flags,
                     struct wharf_stream **out);

/* Connects to a UNIX stream socket. Returns 0, -ENOENT, -ECONNREFUSED,
 * -ENAMETOOLONG, WHARF_ECANCELLED, WHARF_EINVAL (also outside a task). */
int wharf_unix_connect(const char *path, struct wharf_stream **out);

/* Listens on a UNIX socket path. A stale socket file (nobody listening) is
 * replaced; a live one gives -EADDRINUSE; any other file gives -EEXIST.
 * mode (e.g. 0660; 0 keeps the umask's) is applied to the socket file
 * before listen(2). Closing the listener does not remove the file (as
 * AnyIO): its creator decides; the next wharf_unix_listen replaces it.
 * Returns 0, -ENAMETOOLONG, WHARF_EINVAL or -errno. */
int wharf_unix_listen(const char *path, unsigned mode, int backlog,
                      struct wharf_stream **out);

/* An unconnected UDP socket bound to local_host:local_port (NULL: 0.0.0.0;
 * 0: any port), for wharf_receive_from / wharf_send_to. flags as listen. */
int wharf_udp_open(const char *local_host, unsigned local_port, unsigned flags,
                   struct wharf_stream **out);

/* A connected UDP socket: wharf_receive returns one datagram per call (only
 * from the peer), wharf_send sends one datagram. local_host may be NULL.
 * Exception to the byte-stream rule: an empty datagram is received as 0
 * bytes (UDP has no end of stream). ICMP errors come back from a later call
 * as -errno (-ECONNREFUSED when nobody listens at the peer's port).
 * For both kinds of UDP socket: datagrams up to 65535 bytes; one longer
 * than the receive buffer is truncated to it and the rest is lost; a
 * datagram too large to send is -EMSGSIZE. */
int wharf_udp_connect(const char *remote_host, unsigned remote_port,
                      const char *local_host, unsigned local_port,
                      struct wharf_stream **out);

/* Adopt a descriptor (made non-blocking; owned by the stream from now on):
 * a connected SOCK_STREAM, a listening socket, or a SOCK_DGRAM socket.
 * Returns 0, WHARF_EINVAL (wrong socket type), -ENOMEM (fd not adopted). */
int wharf_socket_stream_from_fd(int fd, struct wharf_stream **out);
int wharf_socket_listener_from_fd(int fd, struct wharf_stream **out);
int wharf_udp_from_fd(int fd, struct wharf_stream **out);

/* Parses "1.2.3.4:80", "[::1]:80" or a path starting with '/' (or
 * "unix:/path") into ss. Numeric only; ports 0..65535 (callers check their
 * own range); "unix:" also takes a relative path. Returns 0 or WHARF_EINVAL
 * (with no partial result). */
int wharf_addr_parse(const char *text, struct sockaddr_storage *ss, socklen_t *len);

/* Formats an address as "1.2.3.4:80", "[::1]:80" ("[fe80::1%2]:80" with a
 * scope id, which wharf_addr_parse also reads) or the UNIX path ("@name"
 * for an abstract one, "" for an unnamed one). Returns
 * the length written (NUL excluded), or -ENOSPC / WHARF_EINVAL. size 64 is
 * enough for any IP address; UNIX paths need up to 108. */
int wharf_addr_format(const struct sockaddr *sa, socklen_t len, char *buf, size_t size);

#ifdef __cplusplus
}
#endif
#endif /* WHARF_NET_H */
