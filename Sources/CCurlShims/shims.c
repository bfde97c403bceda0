#include "CCurlShims.h"

#include <curl/curl.h>

int broker_curl_global_init(void) {
    return (int)curl_global_init(CURL_GLOBAL_DEFAULT);
}

int broker_curl_easy_setopt_long(void *easy, int option, long value) {
    return (int)curl_easy_setopt(easy, (CURLoption)option, value);
}

int broker_curl_easy_setopt_off_t(void *easy, int option, int64_t value) {
    return (int)curl_easy_setopt(easy, (CURLoption)option, (curl_off_t)value);
}

int broker_curl_easy_setopt_pointer(void *easy, int option, void *value) {
    return (int)curl_easy_setopt(easy, (CURLoption)option, value);
}

int broker_curl_easy_setopt_string(void *easy, int option, const char *value) {
    return (int)curl_easy_setopt(easy, (CURLoption)option, value);
}

int broker_curl_easy_setopt_data_callback(void *easy, int option, broker_curl_data_callback callback) {
    return (int)curl_easy_setopt(easy, (CURLoption)option, callback);
}

int broker_curl_easy_setopt_xferinfo_callback(void *easy, broker_curl_xferinfo_callback callback) {
    // curl_off_t is 64-bit on every platform libcurl supports, so the function types match.
    return (int)curl_easy_setopt(easy, CURLOPT_XFERINFOFUNCTION, (curl_xferinfo_callback)callback);
}

int broker_curl_easy_getinfo_long(void *easy, int info, long *value) {
    return (int)curl_easy_getinfo(easy, (CURLINFO)info, value);
}

int broker_curl_easy_getinfo_pointer(void *easy, int info, void **value) {
    return (int)curl_easy_getinfo(easy, (CURLINFO)info, value);
}

int broker_curl_multi_setopt_long(void *multi, int option, long value) {
    return (int)curl_multi_setopt(multi, (CURLMoption)option, value);
}
