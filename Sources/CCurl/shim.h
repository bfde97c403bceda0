#ifndef BROKER_CCURL_SHIM_H
#define BROKER_CCURL_SHIM_H
#include <curl/curl.h>
#endif
