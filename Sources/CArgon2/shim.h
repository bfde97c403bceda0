#ifndef BROKER_CARGON2_SHIM_H
#define BROKER_CARGON2_SHIM_H
#include <argon2.h>
#endif
