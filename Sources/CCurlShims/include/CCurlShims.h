#ifndef BROKER_CURL_SHIMS_H
#define BROKER_CURL_SHIMS_H

// Typed entry points for libcurl's variadic functions (curl_easy_setopt, curl_easy_getinfo,
// curl_multi_setopt), which Swift cannot call, and for the flags that are macros.
//
// Handles are `void *` (libcurl's own `CURL` and `CURLM` are `typedef void`) and options are
// plain integers, so this header does not include <curl/curl.h>: the CCurl module owns those
// declarations and a second copy here would give Swift two distinct `CURLoption` types.

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// `CURLOPT_WRITEFUNCTION` / `CURLOPT_HEADERFUNCTION` signature.
typedef size_t (*broker_curl_data_callback)(char *data, size_t size, size_t count, void *userdata);
/// `CURLOPT_XFERINFOFUNCTION` signature; non-zero aborts the transfer.
typedef int (*broker_curl_xferinfo_callback)(void *userdata, int64_t download_total, int64_t download_now,
                                             int64_t upload_total, int64_t upload_now);

/// curl_global_init(CURL_GLOBAL_DEFAULT); returns the CURLcode.
int broker_curl_global_init(void);

int broker_curl_easy_setopt_long(void *easy, int option, long value);
int broker_curl_easy_setopt_off_t(void *easy, int option, int64_t value);
int broker_curl_easy_setopt_pointer(void *easy, int option, void *value);
/// libcurl copies the string (since 7.17), so it need not outlive the call.
int broker_curl_easy_setopt_string(void *easy, int option, const char *value);
int broker_curl_easy_setopt_data_callback(void *easy, int option, broker_curl_data_callback callback);
int broker_curl_easy_setopt_xferinfo_callback(void *easy, broker_curl_xferinfo_callback callback);

int broker_curl_easy_getinfo_long(void *easy, int info, long *value);
int broker_curl_easy_getinfo_pointer(void *easy, int info, void **value);

int broker_curl_multi_setopt_long(void *multi, int option, long value);

#ifdef __cplusplus
}
#endif

#endif
