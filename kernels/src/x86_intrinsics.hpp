// <immintrin.h> without GCC 12's false alarms: its _mm512_undefined_* helpers initialise a variable with
// itself, which GCC 12 reports as "'__Y' is used uninitialized" at every inlined use (GCC bug 105593,
// fixed in GCC 13): over two hundred warnings per build of avx512.cpp. Only the header's own lines are
// silenced; warnings about the kernels' code stay on.
#pragma once

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
