/* socket.c: placeholder, lands with its tests */
extern int wharf_placeholder_socket;
