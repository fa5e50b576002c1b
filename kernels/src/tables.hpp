// The tables each instruction set's translation unit defines, and the portable kernels that the others
// share (a table holds plain function pointers, so sharing one needs no inline code across units).
#pragma once

#include "tandem/kernels/kernels.hpp"

namespace tandem::kernels {

extern const Table kRefTable;
#if defined(__x86_64__)
extern const Table kAvx2Table;
extern const Table kAvx512Table;
#elif defined(__aarch64__)
extern const Table kNeonTable;
extern const Table kNeonDotprodTable;
#endif

namespace ref {
float Dot(const float* a, const float* b, int64_t n);
void Axpy(float a, const float* x, float* y, int64_t n);
void RmsNorm(const float* x, const float* gain, int64_t n, float eps, float* out);
void SwiGlu(float* gate, const float* up, int64_t n);
void Softmax(float* values, int64_t n);
void Rotate(float* head, const float* cos, const float* sin, int64_t pairs, int64_t stride, int64_t partner);
}  // namespace ref

}  // namespace tandem::kernels
