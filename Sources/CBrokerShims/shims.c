// pthread_setname_np is a GNU extension.
#define _GNU_SOURCE
#include "CBrokerShims.h"

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

long broker_bio_get_mem_data(BIO *bio, const char **data) {
    char *pointer = NULL;
    long length = BIO_get_mem_data(bio, &pointer);
    *data = pointer;
    return length;
}

void broker_openssl_free(void *ptr) {
    OPENSSL_free(ptr);
}

int broker_evp_pkey_public_key_selection(void) {
    return EVP_PKEY_PUBLIC_KEY;
}

// Returning 0 tells OpenSSL "no passphrase": the default callback would read
// one from the controlling terminal, which would hang a daemon.
static int broker_no_passphrase(char *buf, int size, int rwflag, void *userdata) {
    (void)buf; (void)size; (void)rwflag; (void)userdata;
    return 0;
}

static BIO *broker_read_only_bio(const char *pem, size_t length) {
    if (length > INT_MAX) {
        return NULL;
    }
    return BIO_new_mem_buf(pem, (int)length);
}

EVP_PKEY *broker_pem_read_private_key(const char *pem, size_t length) {
    BIO *bio = broker_read_only_bio(pem, length);
    if (bio == NULL) {
        return NULL;
    }
    EVP_PKEY *key = PEM_read_bio_PrivateKey(bio, NULL, broker_no_passphrase, NULL);
    BIO_free(bio);
    return key;
}

EVP_PKEY *broker_pem_read_public_key(const char *pem, size_t length) {
    BIO *bio = broker_read_only_bio(pem, length);
    if (bio == NULL) {
        return NULL;
    }
    EVP_PKEY *key = PEM_read_bio_PUBKEY(bio, NULL, broker_no_passphrase, NULL);
    BIO_free(bio);
    return key;
}

// MARK: - Random bytes

enum { BROKER_RANDOM_CACHE_SIZE = 1024, BROKER_RANDOM_CACHED_MAX = 64 };

static atomic_ulong broker_fork_generation;
static pthread_once_t broker_random_once = PTHREAD_ONCE_INIT;

static void broker_random_after_fork_in_child(void) {
    atomic_fetch_add(&broker_fork_generation, 1);
}

static void broker_random_register_fork_handler(void) {
    pthread_atfork(NULL, NULL, broker_random_after_fork_in_child);
}

static _Thread_local unsigned char broker_random_cache[BROKER_RANDOM_CACHE_SIZE];
// The unused bytes are the last `broker_random_available` of the cache.
static _Thread_local size_t broker_random_available;
static _Thread_local unsigned long broker_random_generation;

static int broker_random_direct(unsigned char *out, size_t length) {
    while (length > 0) {
        int chunk = length > INT_MAX ? INT_MAX : (int)length;
        if (RAND_bytes(out, chunk) != 1) {
            return 0;
        }
        out += chunk;
        length -= (size_t)chunk;
    }
    return 1;
}

int broker_random_bytes(unsigned char *out, size_t length) {
    if (length > BROKER_RANDOM_CACHED_MAX) {
        return broker_random_direct(out, length);
    }
    pthread_once(&broker_random_once, broker_random_register_fork_handler);
    unsigned long generation = atomic_load(&broker_fork_generation);
    if (broker_random_generation != generation) {
        // This thread's cache was inherited through fork(): the parent may hand out the
        // same bytes, so drop them.
        OPENSSL_cleanse(broker_random_cache, sizeof broker_random_cache);
        broker_random_available = 0;
        broker_random_generation = generation;
    }
    if (broker_random_available < length) {
        if (RAND_bytes(broker_random_cache, (int)sizeof broker_random_cache) != 1) {
            broker_random_available = 0;
            return 0;
        }
        broker_random_available = sizeof broker_random_cache;
    }
    unsigned char *source = broker_random_cache + (sizeof broker_random_cache - broker_random_available);
    memcpy(out, source, length);
    OPENSSL_cleanse(source, length);
    broker_random_available -= length;
    return 1;
}

int broker_name_current_thread(const char *name) {
    char truncated[16];
    strncpy(truncated, name, sizeof(truncated) - 1);
    truncated[sizeof(truncated) - 1] = '\0';
#if defined(__APPLE__)
    return pthread_setname_np(truncated);
#else
    return pthread_setname_np(pthread_self(), truncated);
#endif
}
