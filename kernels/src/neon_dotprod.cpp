// The neon_dotprod table: neon.cpp compiled again with ARMv8.2's dot product instructions (FEAT_DotProd:
// Cortex-A55/A75 and later, Neoverse, Apple M), which its int8 and int4 products then use (sdot). A second
// translation unit with its own flags, as for every instruction set: no sdot reaches a CPU without it.
#include "neon.cpp"
