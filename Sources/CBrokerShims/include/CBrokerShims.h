#ifndef BROKER_SHIMS_H
#define BROKER_SHIMS_H

// Wrappers for the parts of OpenSSL that Swift cannot call: macros, and calls
// whose defaults are unsafe for a server (a PEM reader that would prompt on the
// terminal for a passphrase). Types are forward-declared so this module does
// not re-export the OpenSSL headers that COpenSSL already owns.

#include <stddef.h>

struct bio_st;
struct evp_pkey_st;

#ifdef __cplusplus
extern "C" {
#endif

/// BIO_get_mem_data: a macro over BIO_ctrl. Returns the length, sets *data.
long broker_bio_get_mem_data(struct bio_st *bio, const char **data);

/// OPENSSL_free: a macro that records file and line.
void broker_openssl_free(void *ptr);

/// Reads one PEM private key (PKCS#8 or traditional RSA/EC) from memory.
/// Encrypted keys fail instead of asking for a passphrase on the terminal.
struct evp_pkey_st *broker_pem_read_private_key(const char *pem, size_t length);

/// Names the calling thread (as `top -H`, `ps -L` and `perf` show it; Linux keeps 15 bytes).
/// Returns 0 on success.
int broker_name_current_thread(const char *name);

/// Fills `out` with `length` bytes from OpenSSL's CSPRNG; returns 1 on success, 0 on failure.
/// Requests of up to 64 bytes are served from a per-thread cache refilled 1 KiB at a time,
/// because each RAND_bytes call in OpenSSL 3.0 costs about a microsecond (a getpid system
/// call and parameter lookups by name) whatever the size. Bytes handed out are wiped from the
/// cache, and a fork discards the child's copy so parent and child never share bytes.
int broker_random_bytes(unsigned char *out, size_t length);

/// EVP_PKEY_PUBLIC_KEY: an OR of macros that Swift does not import.
int broker_evp_pkey_public_key_selection(void);

/// Reads one PEM SubjectPublicKeyInfo ("PUBLIC KEY") from memory.
struct evp_pkey_st *broker_pem_read_public_key(const char *pem, size_t length);

#ifdef __cplusplus
}
#endif

#endif
