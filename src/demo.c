/* placeholder: the demo lands with the socket streams */
int main(void) { return 0; }
